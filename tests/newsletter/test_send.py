"""Sending editions through a real SMTP server (aiosmtpd): what arrives, exactly once, failures, injection."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.db.models import F
from django.test import Client
from django.utils import timezone

from collector.models import PhotoStatus
from newsletter import delivery, services
from newsletter.models import Delivery, Edition, Subscriber
from tests.factories import image_bytes, make_label, make_photo, make_volunteer
from tests.newsletter.conftest import make_edition, make_subscriber, parts


def _photo(volunteer, label=None):
    return make_photo(volunteer=volunteer, label=label, status=PhotoStatus.APPROVED, image=image_bytes(size=(64, 48)))


def _one_click_url(message) -> str:
    header = message["List-Unsubscribe"]
    urls = re.findall(r"<(https?://[^>]+)>", header)
    assert len(urls) == 1, header
    return urls[0]


@pytest.mark.django_db
class TestEditionMessage:
    def test_it_sends_both_parts_with_public_photos_credited_and_one_click_headers(self, smtp):
        public = make_volunteer("Ansel", consent_public_credit=True)
        private = make_volunteer("Hidden", consent_public_credit=False)
        label = make_label("teapot", name="Teapot")
        shown = _photo(public, label)
        not_shown = _photo(private, label)
        reader = make_subscriber("reader@example.org")
        edition = make_edition(introduction="Hello from the team.")

        result = delivery.edition_send(edition_id=edition.pk)

        assert result.finished and result.sent == 1
        assert smtp.recipients() == ["reader@example.org"]
        message = smtp.messages[0]
        assert message["To"] == "reader@example.org"
        assert message["Subject"] == edition.subject
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert _one_click_url(message).startswith("https://crowdlens.example/newsletter/unsubscribe/")
        assert message.get_content_type() == "multipart/alternative"
        text, html = parts(message)
        assert "Hello from the team." in text and "Hello from the team." in html
        # Photos by absolute URL, only the consenting volunteer's, credited by display name.
        image_urls = re.findall(r'<img src="([^"]+)"', html)
        assert image_urls == [f"https://crowdlens.example/api/v1/photos/{shown.pk}/thumbnail/"]
        assert "Ansel" in html and "Ansel" in text and "Hidden" not in html + text
        assert f"/photos/{not_shown.pk}/" not in html + text
        assert 'style="' in html and "<style" not in html  # inline styles only
        # The visible unsubscribe link is the header's link; the archive is linked.
        assert _one_click_url(message) in text and _one_click_url(message) in html
        assert f"https://crowdlens.example/newsletter/archive/{edition.pk}/" in text
        # The thumbnail really is public to anyone who opens the email.
        response = Client().get(urlsplit(image_urls[0]).path)
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
        edition.refresh_from_db()
        assert edition.status == "sent" and edition.sent_at is not None

    def test_it_unsubscribes_by_post_to_the_header_link_and_skips_the_next_edition(self, smtp):
        reader = make_subscriber("leaver@example.org")
        other = make_subscriber("stayer@example.org")
        edition = make_edition()
        delivery.edition_send(edition_id=edition.pk)
        url = _one_click_url(smtp.to("leaver@example.org")[0])

        # What Gmail or Yahoo do: POST the RFC 8058 body, no cookies, no CSRF token.
        response = Client(enforce_csrf_checks=True).post(
            urlsplit(url).path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

        assert response.status_code == 200
        reader.refresh_from_db()
        assert reader.status == "unsubscribed"
        later = Edition.objects.create(period_start=edition.period_end, period_end=edition.period_end + timedelta(days=7),
                                       subject="Next", content={}, status="scheduled", scheduled_for=timezone.now())
        delivery.edition_send(edition_id=later.pk)
        assert [m["Subject"] for m in smtp.to("leaver@example.org")] == [edition.subject]
        assert [m["Subject"] for m in smtp.to(other.email)] == [edition.subject, "Next"]

    def test_it_uses_one_smtp_connection_for_many_messages(self, smtp):
        for _ in range(12):
            make_subscriber()
        edition = make_edition()

        delivery.edition_send(edition_id=edition.pk)

        assert len(smtp.recipients()) == 12
        assert smtp.connections == 1
        assert len({m["Message-ID"] for m in smtp.messages}) == 12
        assert len({m["List-Unsubscribe"] for m in smtp.messages}) == 12
        assert all(m["Date"] for m in smtp.messages)

    def test_it_sends_an_internationalised_address_the_same_way_as_a_plain_one(self, smtp):
        make_subscriber("plain@example.org")
        make_subscriber("leser@bücher.example")
        edition = make_edition()

        result = delivery.edition_send(edition_id=edition.pk)

        assert result.sent == 2
        assert sorted(smtp.recipients()) == ["leser@xn--bcher-kva.example", "plain@example.org"]
        plain, idn = smtp.to("plain@example.org")[0], smtp.to("leser@xn--bcher-kva.example")[0]
        # The prepared-bytes path (plain) and Django's full path (IDN) give the same message.
        assert sorted(k for k in plain.keys() if k != "To") == sorted(k for k in idn.keys() if k != "To")
        assert plain["Message-ID"] != idn["Message-ID"]
        assert _one_click_url(plain) != _one_click_url(idn)
        assert [p.get_content_type() for p in plain.walk()] == [p.get_content_type() for p in idn.walk()]

    def test_it_drops_a_photo_whose_volunteer_withdrew_consent_after_composing(self, smtp):
        volunteer = make_volunteer("Changed", consent_public_credit=True)
        photo = _photo(volunteer)
        make_subscriber()
        edition = make_edition()
        assert edition.content["best_photos"][0]["photo_id"] == photo.pk
        volunteer.consent_public_credit = False
        volunteer.save()

        delivery.edition_send(edition_id=edition.pk)

        text, html = parts(smtp.messages[0])
        assert "Changed" not in text + html and "<img" not in html


@pytest.mark.django_db
class TestOtherBackends:
    def test_it_sends_through_a_non_smtp_backend_as_ordinary_messages(self, settings, mailoutbox):
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        settings.SITE_URL = "https://crowdlens.example"
        make_subscriber("a@example.org")
        make_subscriber("b@example.org")
        edition = make_edition()

        result = delivery.edition_send(edition_id=edition.pk)

        assert result.finished and result.sent == 2
        assert sorted(m.to[0] for m in mailoutbox) == ["a@example.org", "b@example.org"]
        message = mailoutbox[0]
        assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.extra_headers["List-Unsubscribe"] in f"<{message.body.split('one click: ')[1].strip()}>"
        assert message.alternatives[0][1] == "text/html"


@pytest.mark.django_db
class TestHeaderInjection:
    def test_it_records_an_address_with_crlf_as_failed_and_sends_it_nowhere(self, smtp):
        good = make_subscriber("good@example.org")
        # Written past validation (an old import, say): the sender must still refuse it.
        bad = make_subscriber("bad@example.org\r\nBcc: victim@example.org")
        edition = make_edition()

        result = delivery.edition_send(edition_id=edition.pk)

        assert result.finished and result.sent == 1 and result.failed == 1
        assert smtp.recipients() == ["good@example.org"]
        assert all("victim" not in str(m) for m in smtp.messages)
        refused = Delivery.objects.get(subscriber=bad)
        assert refused.status == "failed" and "\n" not in refused.last_error
        assert Delivery.objects.get(subscriber=good).status == "sent"

    def test_it_keeps_a_subject_with_crlf_on_one_line(self, smtp):
        make_subscriber("reader@example.org")
        edition = make_edition(subject="Weekly\r\nBcc: victim@example.org")

        delivery.edition_send(edition_id=edition.pk)

        assert smtp.recipients() == ["reader@example.org"]
        message = smtp.messages[0]
        assert message["Bcc"] is None
        assert message["Subject"] == "Weekly Bcc: victim@example.org"

    def test_it_refuses_a_multi_line_subject_in_the_admin_form(self):
        from django.core.exceptions import ValidationError

        edition = make_edition()
        edition.subject = "Hi\nBcc: x@example.org"
        with pytest.raises(ValidationError):
            edition.full_clean()


@pytest.mark.django_db
class TestFailures:
    def test_it_retries_a_temporary_failure_with_back_off_then_sends(self, smtp, settings):
        make_subscriber("ok@example.org")
        make_subscriber("busy@example.org")
        smtp.refuse_temporarily["busy@example.org"] = 2
        edition = make_edition()

        first = delivery.edition_send(edition_id=edition.pk, max_wait=0)

        assert first.sent == 1 and first.retry == 1 and not first.finished
        row = Delivery.objects.get(subscriber__email="busy@example.org")
        assert row.status == "retry" and row.attempts == 1 and "451" in row.last_error
        assert timedelta(seconds=55) < row.next_attempt_at - timezone.now() <= timedelta(seconds=60)
        # Nothing is due yet: a second run sends nothing.
        assert delivery.edition_send(edition_id=edition.pk, max_wait=0).sent == 0

        Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
        second = delivery.edition_send(edition_id=edition.pk, max_wait=0)
        row.refresh_from_db()
        assert second.retry == 1 and row.attempts == 2
        assert row.next_attempt_at - timezone.now() > timedelta(seconds=115)  # doubled

        Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
        third = delivery.edition_send(edition_id=edition.pk, max_wait=0)

        assert third.sent == 1 and third.finished
        assert sorted(smtp.recipients()) == ["busy@example.org", "ok@example.org"]
        assert smtp.rcpt_attempts["busy@example.org"] == 3

    def test_it_waits_for_a_near_retry_within_the_run(self, smtp, settings):
        settings.NEWSLETTER_RETRY_BASE_SECONDS = 0
        make_subscriber("busy@example.org")
        smtp.refuse_temporarily["busy@example.org"] = 1
        edition = make_edition()

        result = delivery.edition_send(edition_id=edition.pk, max_wait=5)

        assert result.finished and result.sent == 1 and result.retry == 1
        assert smtp.recipients() == ["busy@example.org"]

    def test_it_records_a_permanent_failure_and_stops_mailing_an_address_that_keeps_failing(self, smtp, settings):
        settings.NEWSLETTER_MAX_FAILURES = 2
        make_subscriber("ok@example.org")
        gone = make_subscriber("gone@example.org")
        smtp.refuse_permanently.add("gone@example.org")

        for week in range(3):
            edition = Edition.objects.create(
                period_start=timezone.now() - timedelta(days=7 * (week + 1)),
                period_end=timezone.now() - timedelta(days=7 * week), subject=f"Week {week}", content={},
                status="scheduled", scheduled_for=timezone.now())
            result = delivery.edition_send(edition_id=edition.pk)
            assert result.finished

        gone.refresh_from_db()
        assert gone.status == "disabled" and gone.failure_count == 2 and "550" in gone.last_failure
        assert smtp.rcpt_attempts["gone@example.org"] == 2  # the third edition did not try it
        failed = Delivery.objects.filter(subscriber=gone, status="failed")
        assert failed.count() == 2 and all(d.attempts == 1 for d in failed)
        assert len(smtp.to("ok@example.org")) == 3

    def test_it_gives_up_after_the_last_attempt(self, smtp, settings):
        settings.NEWSLETTER_MAX_ATTEMPTS = 2
        settings.NEWSLETTER_RETRY_BASE_SECONDS = 0
        make_subscriber("busy@example.org")
        smtp.refuse_temporarily["busy@example.org"] = 10
        edition = make_edition()

        result = delivery.edition_send(edition_id=edition.pk, max_wait=5)

        assert result.finished and result.failed == 1
        row = Delivery.objects.get()
        assert row.status == "failed" and row.attempts == 2
        assert Subscriber.objects.get().failure_count == 1

    def test_it_stops_and_releases_its_claims_when_the_server_is_down(self, smtp, settings):
        for _ in range(3):
            make_subscriber()
        edition = make_edition()
        settings.EMAIL_PORT = _closed_port()

        result = delivery.edition_send(edition_id=edition.pk)

        assert not result.finished and "Cannot reach the mail server" in result.stopped
        assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
        assert Subscriber.objects.filter(failure_count__gt=0).count() == 0

        settings.EMAIL_PORT = smtp.port
        assert delivery.edition_send(edition_id=edition.pk).sent == 3


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Boom(Exception):
    pass


@pytest.mark.django_db
class TestResume:
    def test_it_resumes_a_send_killed_mid_way_with_only_the_rest(self, smtp, settings):
        settings.NEWSLETTER_BATCH_SIZE = 5
        readers = [make_subscriber() for _ in range(12)]
        edition = make_edition()
        sent = []

        def die_after_seven(outcome):
            sent.append(outcome)
            if len(sent) == 7:
                raise Boom()

        with pytest.raises(Boom):
            delivery.edition_send(edition_id=edition.pk, on_progress=die_after_seven)
        assert len(smtp.recipients()) == 7
        assert Delivery.objects.filter(status="sent").count() == 7
        assert Delivery.objects.filter(status="claimed").count() == 0  # unattempted rows went back

        result = delivery.edition_send(edition_id=edition.pk)

        assert result.sent == 5 and result.finished
        assert sorted(smtp.recipients()) == sorted(r.email for r in readers)

    def test_it_takes_over_the_claims_of_a_dead_sender_after_the_lease(self, smtp, settings):
        settings.NEWSLETTER_CLAIM_LEASE_SECONDS = 60
        readers = [make_subscriber() for _ in range(4)]
        edition = make_edition()
        delivery.edition_start_sending(edition_id=edition.pk)
        dead = delivery.deliveries_claim(edition_id=edition.pk, claim="dead-sender", limit=2)
        assert len(dead) == 2

        first = delivery.edition_send(edition_id=edition.pk, max_wait=0)
        assert first.sent == 2 and not first.finished  # the dead sender's rows are still leased

        Delivery.objects.filter(claimed_by="dead-sender").update(claimed_at=timezone.now() - timedelta(seconds=61))
        second = delivery.edition_send(edition_id=edition.pk, max_wait=0)

        assert second.sent == 2 and second.finished
        assert sorted(smtp.recipients()) == sorted(r.email for r in readers)

    def test_it_stops_when_staff_hold_the_edition_and_goes_on_after_release(self, smtp, settings):
        settings.NEWSLETTER_BATCH_SIZE = 2
        readers = [make_subscriber() for _ in range(6)]
        edition = make_edition()
        progress = []

        def hold_after_two(outcome):
            progress.append(outcome)
            if len(progress) == 2:
                services.edition_hold(edition_id=edition.pk)

        held = delivery.edition_send(edition_id=edition.pk, on_progress=hold_after_two)
        assert held.sent == 2 and held.stopped == "edition held"
        assert delivery.edition_send(edition_id=edition.pk).sent == 0

        assert services.edition_release(edition_id=edition.pk)
        edition.refresh_from_db()
        assert edition.status == "sending"
        assert delivery.edition_send(edition_id=edition.pk).sent == 4
        assert sorted(smtp.recipients()) == sorted(r.email for r in readers)


def _postgres_only():
    return pytest.mark.skipif(
        not connection.vendor == "postgresql",
        reason="needs a database other processes and threads can share; SQLite's in-memory test database "
               "is private to this process and reports 'table is locked' between threads",
    )


@pytest.mark.django_db(transaction=True)
class TestConcurrentSenders:
    @_postgres_only()
    def test_it_never_sends_twice_with_two_senders_at_once(self, smtp, settings):
        settings.NEWSLETTER_BATCH_SIZE = 3
        readers = [make_subscriber() for _ in range(40)]
        edition = make_edition()
        results, errors = [], []
        start = threading.Barrier(2)

        def sender():
            try:
                start.wait()
                results.append(delivery.edition_send(edition_id=edition.pk, max_wait=0))
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

        assert errors == []
        assert sorted(smtp.recipients()) == sorted(r.email for r in readers)  # each exactly once
        assert sum(r.sent for r in results) == 40
        assert Delivery.objects.filter(status="sent").count() == 40
        edition.refresh_from_db()
        assert edition.status == "sent"


@pytest.mark.django_db(transaction=True)
class TestKilledSender:
    @_postgres_only()
    def test_it_resumes_after_a_sender_process_is_killed_mid_way(self, smtp, settings):
        readers = [make_subscriber() for _ in range(30)]
        edition = make_edition()
        smtp.stall_after = 10
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": settings.SECRET_KEY,
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
                            f"{db['PORT'] or 5432}/{db['NAME']}",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp.port),
            "NEWSLETTER_BATCH_SIZE": "4",
            "NEWSLETTER_CLAIM_LEASE_SECONDS": "2",
        }
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        sender = subprocess.Popen([sys.executable, "manage.py", "newsletter_send", "--no-compose", "--no-progress",
                                   "--skip-checks"],
                                  cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert smtp.stalled.wait(60), sender.stderr.read1().decode() if sender.poll() is not None else "no stall"
        finally:
            sender.kill()  # SIGKILL: no clean-up runs in the sender
            sender.wait(10)

        assert Delivery.objects.filter(edition=edition, status="sent").count() == 10
        assert Delivery.objects.filter(edition=edition, status="claimed").count() == 2  # its batch of 4, 2 done
        assert len(smtp.recipients()) == 10

        smtp.stall_after = None
        settings.NEWSLETTER_CLAIM_LEASE_SECONDS = 2
        # The dead sender's lease runs out: its claims are dated back past the lease rather than waited for.
        Delivery.objects.filter(edition=edition, status="claimed").update(claimed_at=F("claimed_at") - timedelta(seconds=3))
        result = delivery.edition_send(edition_id=edition.pk, max_wait=0)

        assert result.finished and result.sent == 20
        assert sorted(smtp.recipients()) == sorted(r.email for r in readers)  # each exactly once
