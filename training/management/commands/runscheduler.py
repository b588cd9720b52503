"""`manage.py runscheduler`: the one scheduler process (started by `make run`).

Runs every entry of settings.SCHEDULER_JOBS as `python manage.py <argv>` at its
time in TIME_ZONE (APScheduler 3 BlockingScheduler, misfire grace and
coalescing), catches up once on a time missed while it was down (within
SCHEDULER_MISFIRE_GRACE), and starts runs admins requested. SIGTERM/SIGINT stop
it cleanly: no new jobs, running jobs get SIGTERM and are waited for. Its heartbeat
row (training.models.ProcessHeartbeat) shows in the admin beside the training workers'.
"""

from __future__ import annotations

import logging
import signal
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from training import scheduling
from training.models import ProcessHeartbeat
from training.workers import ProcessBeat

logger = logging.getLogger("crowdlens.scheduler")


class Command(BaseCommand):
    help = "Run the scheduled jobs (settings.SCHEDULER_JOBS) at their times; one such process per installation."

    def handle(self, *args, **options):
        jobs = list(settings.SCHEDULER_JOBS)
        scheduler = BlockingScheduler(
            timezone=ZoneInfo(settings.TIME_ZONE),
            executors={"default": ThreadPoolExecutor(max_workers=max(2, len(jobs) + 1))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": settings.SCHEDULER_MISFIRE_GRACE},
        )
        for job in jobs:
            scheduler.add_job(scheduling.scheduled_job_run, scheduling.job_trigger(job), args=[job], id=job["id"],
                              name=" ".join(job["command"]))
        if settings.TRAINING_WORKER == "local":  # remote: trainworkers take requested runs
            scheduler.add_job(scheduling.training_requests_poll,
                              IntervalTrigger(seconds=settings.TRAINING_REQUEST_POLL_SECONDS),
                              id="training-requests", name="start runs requested in the admin")
        now = timezone.now()
        missed = scheduling.jobs_missed(jobs, now=now)
        for job, scheduled_for, covers in scheduling.catch_up_plan(missed):
            also = f" (also covering {', '.join(j['id'] for j, _ in covers)})" if covers else ""
            self.stdout.write(f"{job['id']} missed its run at {scheduled_for:%Y-%m-%d %H:%M %Z}; running it now{also}.")
            scheduler.add_job(scheduling.scheduled_job_run, "date", run_date=now, args=[job, scheduled_for, covers],
                              id=f"{job['id']}-catch-up", misfire_grace_time=None)
        caught_up = {job["id"] for job, _ in missed}
        for job, scheduled_for in scheduling.jobs_due_at_start(jobs, now=now):
            if job["id"] in caught_up:
                continue
            self.stdout.write(f"{job['id']} has not run since {scheduled_for:%Y-%m-%d %H:%M %Z}; running it now.")
            scheduler.add_job(scheduling.scheduled_job_run, "date", run_date=now, args=[job, scheduled_for],
                              id=f"{job['id']}-at-start", misfire_grace_time=None)

        def stop(signum, frame):
            self.stdout.write(f"Signal {signum}: stopping the scheduler.")
            if scheduler.running:
                scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for job in jobs:
            self.stdout.write(f"Scheduled {job['id']}: manage.py {' '.join(job['command'])} at "
                              f"hour {job['hour']} minute {job['minute']} {settings.TIME_ZONE}"
                              + (f" on {job['day_of_week']}" if job.get("day_of_week") else ""))
        self.stdout.flush() if hasattr(self.stdout, "flush") else None
        beat = ProcessBeat(ProcessHeartbeat.Kind.SCHEDULER).start()
        try:
            scheduler.start()
            scheduling.children_stop()
        finally:
            beat.stop()
        self.stdout.write("Scheduler stopped.")
