"""The rows of the platform's own processes: the scheduler's memory and every long-running process's heartbeat.

Present also so that migrate sends this app post_migrate (config.apps creates
the cache table). Both tables were made by training's migrations, before the
scheduler moved to config (migrations/0001_from_training.py takes them over
without touching the database).
"""

from __future__ import annotations

from django.db import models


class SchedulerJobRun(models.Model):
    """The scheduler's memory: one row per job per scheduled time, claimed before the job starts.

    The unique constraint makes a scheduled time run once even with two
    schedulers, and lets a restarted scheduler see what it missed.
    """

    job_id = models.CharField(max_length=100)
    scheduled_for = models.DateTimeField()
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    output_tail = models.TextField(blank=True)

    class Meta:
        db_table = "training_schedulerjobrun"  # made by training's migrations before it moved here
        ordering = ["-scheduled_for"]
        constraints = [models.UniqueConstraint(fields=["job_id", "scheduled_for"], name="scheduler_job_once")]

    def __str__(self) -> str:
        return f"{self.job_id} @ {self.scheduled_for:%Y-%m-%d %H:%M}"


class ProcessHeartbeat(models.Model):
    """A long-running process saying it is alive: the scheduler and each training worker, one row per process.

    The admin lists them side by side; a row whose ``beat_at`` is older than a few
    PROCESS_HEARTBEAT_SECONDS belongs to a process that died or hangs.
    """

    class Kind(models.TextChoices):
        SCHEDULER = "scheduler", "Scheduler (runscheduler)"
        TRAINWORKER = "trainworker", "Training worker (trainworker)"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=200, blank=True, help_text="idle | training run #N | stopped")
    devices = models.JSONField(default=list, blank=True, help_text="TensorFlow's physical devices (workers)")

    class Meta:
        db_table = "training_processheartbeat"  # made by training's migrations before it moved here
        ordering = ["kind", "-beat_at"]
        constraints = [models.UniqueConstraint(fields=["kind", "host", "pid", "started_at"], name="heartbeat_one_row_per_process")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.host} (pid {self.pid})"

    def is_alive(self, *, now, interval: int) -> bool:
        """Beating within three intervals and not stopped: one missed beat is a hiccup, three a dead process."""
        return self.stopped_at is None and (now - self.beat_at).total_seconds() <= 3 * interval
