"""`manage.py train [--force] [--enqueue]`: the nightly training job, by hand or from the scheduler.

With --enqueue (the nightly job when TRAINING_WORKER=remote) it only queues the
run for a `trainworker` on the training host and exits.

Claims the one active-run slot in the database (a second copy says so and
exits 0), shows a progress bar, and exits non-zero when the run fails.
SIGTERM/SIGINT stop the run between steps and mark it failed; a run an admin
cancels ends cancelled and the command exits 0.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from config.progress import progress_bar
from training import selectors
from training.services.execute import training_run_execute
from training.services.runs import training_run_claim, training_run_request
from training.models import RunStatus


class Command(BaseCommand):
    help = "Train, evaluate, gate and publish a new on-device model from the approved photos."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Train even when no approved photo changed.")
        parser.add_argument("--trigger", default="manual", choices=["manual", "scheduler", "admin"],
                            help="Who started the run (recorded on it).")
        parser.add_argument("--queued-only", action="store_true",
                            help="Only pick up a run an admin requested; do nothing when there is none.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (log lines only).")
        parser.add_argument("--enqueue", action="store_true",
                            help="Only queue the run for a training worker (the nightly job when TRAINING_WORKER=remote).")
        parser.add_argument("--dataset-version", type=int, metavar="N",
                            help="Repeat a run on exactly dataset version N (refused if any of its photos left).")

    def handle(self, *args, force: bool, trigger: str, queued_only: bool, no_progress: bool,
               dataset_version: int | None = None, enqueue: bool = False, **options):
        if enqueue:
            if dataset_version is not None:
                raise CommandError("--enqueue cannot repeat a dataset version; run `train --dataset-version` on the "
                                   "training host.")
            run, created = training_run_request(trigger=trigger, force=force)
            self.stdout.write(f"Run #{run.pk} queued for a training worker (manage.py trainworker)." if created
                              else f"Run #{run.pk} is already queued; nothing added.")
            return
        stop = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            def on_signal(signum, frame):
                stop.set()
                self.stderr.write(f"Signal {signum}: stopping the run after the current step.")
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            run = training_run_claim(trigger=trigger, force=force or dataset_version is not None, queued_only=queued_only)
            if run is None:
                active = selectors.training_run_active()
                if queued_only and active is None:
                    self.stdout.write("No requested run is waiting.")
                else:
                    self.stdout.write(f"Run #{active.pk if active else '?'} is already in progress; this one does nothing.")
                return
            bar = progress_bar(total=100, unit="%", desc=f"run #{run.pk}", disable=no_progress,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")

            def on_progress(phase: str, percent: float) -> None:
                bar.set_postfix_str(phase)
                bar.n = percent
                bar.refresh()

            def on_log(line: str) -> None:
                if bar.disable:
                    self.stdout.write(line)
                else:
                    tqdm.write(line, file=self.stdout._out)

            run = training_run_execute(run=run, on_progress=on_progress, on_log=on_log, stop_event=stop,
                                       repeat_dataset=dataset_version)
            bar.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        if run.status == RunStatus.FAILED:
            raise CommandError(f"Run #{run.pk} failed: {run.error}")
        if run.status == RunStatus.CANCELLED:  # an admin's decision, not a failure of the job
            self.stdout.write(f"Run #{run.pk} was cancelled: {run.error}")
        elif run.status == RunStatus.SKIPPED:
            self.stdout.write(f"Run #{run.pk} skipped: {run.decisions[-1]['detail'] if run.decisions else ''}")
        elif run.model_version_id:
            self.stdout.write(self.style.SUCCESS(f"Run #{run.pk} published v{run.model_version.version}."))
        else:
            self.stdout.write(f"Run #{run.pk} finished; the candidate was held back (see the run's decisions).")
