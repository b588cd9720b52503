"""`manage.py label_audit`: the nightly audit of approved photos' labels (after the night's training).

Ranks likely label errors with cleanlab on k-fold out-of-sample probabilities over the cached features (the frozen
backbone's and the night's trained network's, one classifier each, averaged) and
sends the most likely (at most LABEL_AUDIT_MAX_PER_NIGHT) back to the review queue; records outliers and
near-duplicate clusters for staff (Training → Label audits). See docs/review.md.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from training.services.label_audit import label_audit_run


class Command(BaseCommand):
    help = "Send likely mislabelled approved photos back to review; list outliers and near-duplicates."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="Flag at most this many (default "
                                                                     "LABEL_AUDIT_MAX_PER_NIGHT).")
        parser.add_argument("--no-progress", action="store_true", help="Accepted for the scheduler.")

    def handle(self, *args, limit: int | None, **options):
        record = label_audit_run(limit=limit, log=lambda message: self.stdout.write(message))
        self.stdout.write(f"Label audit #{record.pk}: {len(record.flagged)} photo(s) sent back to review "
                          f"in {record.seconds:.1f} s, peak memory {record.peak_memory_mb} MB.")
