"""Benchmark: one newsletter edition to N subscribers through a local SMTP server.

    .venv/bin/python bench/newsletter.py [--subscribers 10000]

Runs against its own SQLite database in a temporary folder (or BENCH_DATABASE_URL,
a scratch database that is emptied first) and an aiosmtpd server in a separate
process on 127.0.0.1 (a free port).

- baseline: the same SMTP server receiving one pre-rendered message N times
  over one connection (smtplib's sendmail on Django's connection): the cost of
  SMTP alone. Rounds alternate baseline and edition (--rounds, default 3) and
  the median ratio is reported, so that a busy machine slows both alike.
- edition: ``newsletter.delivery.edition_send`` for real: claims in batches,
  per-message personalisation (unsubscribe token, MIME building), one SMTP
  connection, each delivery marked sent in the database.
- rendering: the per-message cost of building the message bytes without sending.

Prints messages/s for both and their ratio; the target is >= 0.70.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = r"""
import asyncio, sys, threading
from aiosmtpd.controller import Controller

class Counter:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Counter.count += 1
        return "250 OK"

class FreePort(Controller):
    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()

c = FreePort(Counter(), hostname="127.0.0.1", port=0)
c.start()
print(c.port, flush=True)
for line in sys.stdin:  # "count" -> prints the messages received so far
    print(Counter.count, flush=True)
c.stop()
"""


class SmtpServer:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.port = int(self.proc.stdout.readline())

    def count(self) -> int:
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3, help="baseline/edition pairs; the median ratio is reported")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the edition's send")
    args = parser.parse_args()
    n = args.subscribers

    server = SmtpServer()
    work = Path(tempfile.mkdtemp(prefix="crowdlens-bench-newsletter-"))
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ["CROWDLENS_VAR_DIR"] = str(work)
    # BENCH_DATABASE_URL (say a scratch PostgreSQL database) is emptied first; never point it at real data.
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ["EMAIL_HOST"] = "127.0.0.1"
    os.environ["EMAIL_PORT"] = str(server.port)
    os.environ["SITE_URL"] = "https://crowdlens.example"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    import django

    django.setup()
    from django.conf import settings
    from django.core.mail import get_connection
    from django.core.management import call_command
    from django.utils import timezone

    from newsletter import delivery, emails, services
    from newsletter.models import Delivery, Edition, Subscriber

    call_command("migrate", verbosity=0)
    if os.environ.get("BENCH_DATABASE_URL"):
        call_command("flush", interactive=False, verbosity=0)
    print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, SMTP: aiosmtpd on 127.0.0.1:{server.port}")

    _make_photos(args.photos)
    Subscriber.objects.bulk_create(
        [Subscriber(email=f"reader{i:05d}@example.org", status="confirmed", confirmed_at=timezone.now())
         for i in range(n)], batch_size=2000)
    edition = services.edition_compose(now=timezone.now() + timedelta(days=7))
    edition.scheduled_for = timezone.now()
    edition.introduction = "This week's best photos, the winners and what the model learned."
    edition.save()
    addresses = list(Subscriber.objects.order_by("pk").values_list("email", flat=True))

    # Rendering: once per edition, then per message. What the sender does per message: sign the
    # unsubscribe token and substitute it, the address and a Message-ID into the bytes prepared
    # once per batch. For comparison: building each MIME message from scratch.
    from newsletter import tokens

    t0 = time.perf_counter()
    rendered = emails.edition(edition)
    render_once = time.perf_counter() - t0
    t0 = time.perf_counter()
    prepared = rendered.prepare()
    prepare_once = time.perf_counter() - t0
    assert prepared is not None
    sample = min(n, 2000)
    t0 = time.perf_counter()
    for i in range(sample):
        prepared.bytes_for(address=addresses[i], token=tokens.unsubscribe_token(i + 1))
    per_message = (time.perf_counter() - t0) / sample
    t0 = time.perf_counter()
    for i in range(sample):
        rendered.message(to=addresses[i], unsubscribe=emails.unsubscribe_url(i + 1)).message().as_bytes(linesep="\r\n")
    per_message_full = (time.perf_counter() - t0) / sample
    raw = rendered.message(to=addresses[0], unsubscribe=emails.unsubscribe_url(1)).message().as_bytes(linesep="\r\n")
    print(f"message size: {len(raw)} bytes; photos in the edition: {len(edition.content['best_photos'])}")

    def baseline() -> tuple[float, float]:
        before = server.count()
        connection = get_connection()
        connection.open()
        t0, c0 = time.perf_counter(), time.process_time()
        for address in addresses:
            connection.connection.sendmail(settings.NEWSLETTER_FROM_EMAIL, [address], raw)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        connection.close()
        assert server.count() - before == n
        return n / elapsed, cpu / n

    def send_edition(round_no: int) -> tuple[float, float]:
        # Each round sends a fresh edition (same content) to all n subscribers.
        copy = Edition.objects.create(
            period_start=edition.period_start - timedelta(days=7 * round_no),
            period_end=edition.period_end - timedelta(days=7 * round_no), subject=edition.subject,
            introduction=edition.introduction, content=edition.content, status="scheduled",
            scheduled_for=timezone.now())
        before = server.count()
        profile = None
        if args.profile and round_no == 1:
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        result = delivery.edition_send(edition_id=copy.pk, max_wait=0)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        if profile is not None:
            import pstats

            profile.disable()
            pstats.Stats(profile).sort_stats(os.environ.get("SORT", "tottime")).print_stats(int(os.environ.get("TOP", "25")))
        assert result.finished and result.sent == n and server.count() - before == n, result
        assert Delivery.objects.filter(edition=copy, status="sent").count() == n
        return n / elapsed, cpu / n

    print(f"render once per edition: {render_once * 1000:.1f} ms")
    print(f"prepare the MIME bytes (once a minute while sending): {prepare_once * 1000:.1f} ms")
    print(f"rendering cost per message (token + substitutions into prepared bytes): {per_message * 1e6:.0f} µs; "
          f"building each MIME message from scratch instead: {per_message_full * 1e6:.0f} µs")
    # Rounds alternate baseline and edition so that a busy machine slows both alike; the median ratio counts.
    ratios = []
    for round_no in range(1, args.rounds + 1):
        base_rate, base_cpu = baseline()
        rate, cpu = send_edition(round_no)
        ratios.append(rate / base_rate)
        print(f"round {round_no}: baseline (one pre-rendered message x {n}, one connection) {base_rate:.0f} msg/s, "
              f"edition to {n} subscribers (claims, rendering, SMTP, delivery rows) {rate:.0f} msg/s; "
              f"sender CPU per message {base_cpu * 1e6:.0f} µs vs {cpu * 1e6:.0f} µs; ratio {rate / base_rate:.2f}")
    server.stop()
    median = statistics.median(ratios)
    print(f"ratio edition / baseline, median of {len(ratios)} rounds: {median:.2f} (target >= 0.70)")


def _make_photos(count: int) -> None:
    import io
    import random

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from collector import services as collector_services
    from django.contrib.auth import get_user_model

    reviewer = get_user_model().objects.create_user(username="bench-reviewer", is_staff=True, is_superuser=True)
    volunteer, _ = collector_services.volunteer_register(display_name="BenchVolunteer", consent_training=True,
                                                        consent_public_credit=True)
    from collector.models import Label

    label = Label.objects.create(slug="teapot", name="Teapot")
    rng = random.Random(1)
    for i in range(count):
        image = Image.new("RGB", (320, 240), tuple(rng.randrange(256) for _ in range(3)))
        for _ in range(40):
            x, y = rng.randrange(300), rng.randrange(220)
            image.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + 20, y + 20))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG")
        photo = collector_services.photo_create(user=volunteer.user, label_slug=label.slug,
                                                image_file=SimpleUploadedFile(f"p{i}.jpg", buffer.getvalue())).photo
        collector_services.photo_review(photo_id=photo.pk, reviewer=reviewer, decision="approve")


if __name__ == "__main__":
    main()
