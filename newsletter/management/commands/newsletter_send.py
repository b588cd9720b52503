"""Compose the edition of the latest slot when it is due, then send every due edition.

Run hourly by the scheduler; safe to run by hand at the same time (deliveries
are claimed in the database) and to kill at any point (the next run sends only
the rest).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from config.processes import stop_on_signals
from config.progress import progress_bar
from newsletter import delivery, selectors, services
from newsletter.models import Delivery, DeliveryStatus, Edition


class Command(BaseCommand):
    help = "Compose the newsletter edition when its slot has passed and send due editions (with a progress bar)."

    def add_arguments(self, parser):
        parser.add_argument("--edition", type=int, help="Send only this edition (it must be scheduled and due, or sending)")
        parser.add_argument("--no-compose", action="store_true", help="Do not compose a new edition")
        parser.add_argument("--max-wait", type=float, default=None,
                            help="Seconds to wait for retries before leaving them to the next run "
                                 "(default NEWSLETTER_SEND_MAX_WAIT_SECONDS)")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args, **options):
        # SIGTERM or SIGINT: finish the message in flight, release the rest, exit.
        with stop_on_signals() as self.stopping:
            if not options["no_compose"] and options["edition"] is None:
                edition = services.edition_compose()
                if edition is not None:
                    self.stdout.write(f"Composed edition {edition.pk}: {edition.subject} ({edition.get_status_display()})")
            if options["edition"] is not None:
                if not Edition.objects.filter(pk=options["edition"]).exists():
                    raise CommandError(f"No edition {options['edition']}")
                editions = [options["edition"]]
            else:
                editions = list(selectors.editions_due().values_list("pk", flat=True))
            for edition_id in editions:
                if self.stopping.is_set():
                    break
                self._send(edition_id, options)

    def _send(self, edition_id: int, options) -> None:
        remaining = Delivery.objects.filter(edition_id=edition_id).exclude(
            status__in=[DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED]).count()
        total = remaining or selectors.subscribers_confirmed().count()
        with progress_bar(total=total, desc=f"edition {edition_id}", unit="msg", disable=options["no_progress"]) as bar:
            result = delivery.edition_send(
                edition_id=edition_id,
                on_progress=lambda outcome: bar.update(1),
                should_stop=self.stopping.is_set,
                max_wait=options["max_wait"],
            )
        state = "finished" if result.finished else f"stopped: {result.stopped}"
        self.stdout.write(f"Edition {edition_id}: {result.sent} sent, {result.retry} to retry, {result.failed} failed, "
                          f"{result.skipped} skipped ({state})")
        if result.errors:
            raise CommandError("; ".join(result.errors))
