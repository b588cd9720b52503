"""`manage.py runscheduler`: the one scheduler process (started by `make run`).

Runs every app's scheduled jobs (config.scheduler: each app's jobs.py) at their
times in TIME_ZONE as `python manage.py <argv>` (APScheduler 3 BlockingScheduler,
misfire grace and coalescing), catches up once on a time missed while it was
down (within SCHEDULER_MISFIRE_GRACE), and runs the apps' polls (training:
runs staff asked for). SIGTERM/SIGINT stop it cleanly (config.processes): no
new jobs, running jobs get SIGTERM and are waited for. Its heartbeat row
(config.models.ProcessHeartbeat) shows in the admin beside the training workers'.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from config import scheduler as scheduling
from config.models import ProcessHeartbeat
from config.processes import ProcessBeat, stop_on_signals

logger = logging.getLogger("crowdlens.scheduler")


class Command(BaseCommand):
    help = "Run every app's scheduled jobs (their jobs.py) at their times; one such process per installation."

    def handle(self, *args, **options):
        declared = scheduling.jobs_declared()
        jobs = scheduling.timed(declared)
        scheduler = BlockingScheduler(
            timezone=ZoneInfo(settings.TIME_ZONE),
            executors={"default": ThreadPoolExecutor(max_workers=max(2, len(declared)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": settings.SCHEDULER_MISFIRE_GRACE},
        )
        for job in jobs:
            scheduler.add_job(scheduling.scheduled_job_run, scheduling.job_trigger(job), args=[job], id=job["id"],
                              name=" ".join(job["command"]))
        for job in scheduling.polls(declared):
            scheduler.add_job(scheduling.poll_run, IntervalTrigger(seconds=job["every_seconds"]), args=[job],
                              id=job["id"], name=job["call"])
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

        def stop(signum):
            self.stdout.write(f"Signal {signum}: stopping the scheduler.")
            if scheduler.running:
                scheduler.shutdown(wait=False)

        with stop_on_signals(stop) as stopping:
            for job in jobs:
                self.stdout.write(f"Scheduled {job['id']}: manage.py {' '.join(job['command'])} at "
                                  f"hour {job['hour']} minute {job['minute']} {settings.TIME_ZONE}"
                                  + (f" on {job['day_of_week']}" if job.get("day_of_week") else ""))
            self.stdout.flush() if hasattr(self.stdout, "flush") else None
            beat = ProcessBeat(ProcessHeartbeat.Kind.SCHEDULER).start()
            try:
                if not stopping.is_set():  # a signal before the start: nothing to shut down, just leave
                    scheduler.start()
                scheduling.children_stop()
            finally:
                beat.stop()
        self.stdout.write("Scheduler stopped.")
