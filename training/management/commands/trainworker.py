"""`manage.py trainworker`: take queued training runs from the database and do them, on a GPU host.

Runs beside TRAINING_WORKER=remote (the scheduler and the admin then only
queue runs). Logs the devices TensorFlow sees and trains on the GPU when
there is one; writes a heartbeat row the admin shows beside the scheduler's.
SIGTERM/SIGINT end the loop cleanly: a run in progress stops at its next check
(ends failed, "asked to stop"; the next night trains again) and the worker
exits 0. See training.workers and docs/deploy.md.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from collector import storage
from config.models import ProcessHeartbeat
from config.processes import ProcessBeat, stop_on_signals
from training import workers


class Command(BaseCommand):
    help = "Take queued training runs from the database and do them (the training host of TRAINING_WORKER=remote)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Try one claim (and do that run), then exit.")
        parser.add_argument("--poll-seconds", type=float, default=None,
                            help="Seconds between looks for a queued run (default TRAINING_WORKER_POLL_SECONDS).")

    def handle(self, *args, once: bool, poll_seconds: float | None, **options):
        def on_signal(signum):
            self.stdout.write(f"Signal {signum}: stopping the worker after the current step.")

        with stop_on_signals(on_signal) as stop:
            devices = workers.tensorflow_devices()
            gpus = [d["name"] for d in devices if d["type"] == "GPU"]
            self.stdout.write("TensorFlow devices: " + ", ".join(f"{d['name']} ({d['type']})" for d in devices))
            self.stdout.write(f"Training on {gpus[0]}." if gpus else "No GPU found: training on the CPU.")
            if not storage.is_remote():
                self.stdout.write(f"Note: storage is a local folder ({settings.MEDIA_ROOT}); this worker sees the photos "
                                  "only on the host that holds it. A training host of its own needs S3_BUCKET.")
            if settings.TRAINING_WORKER != "remote":
                self.stdout.write("Note: TRAINING_WORKER is 'local' here; the scheduler host then also starts queued "
                                  "runs itself. Set TRAINING_WORKER=remote on every host of the installation.")
            beat = ProcessBeat(ProcessHeartbeat.Kind.TRAINWORKER, devices=devices).start()
            self.stdout.write(f"Training worker {beat.row.host} pid {beat.row.pid} waiting for queued runs.")
            self.stdout.flush()
            try:
                workers.trainworker_loop(stop=stop, beat=beat, once=once, poll_seconds=poll_seconds,
                                         on_log=lambda line: (self.stdout.write(line), self.stdout.flush()))
            finally:
                beat.stop()
        self.stdout.write("Training worker stopped.")
