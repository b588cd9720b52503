"""When jobs run: the logic behind `manage.py runscheduler`, which only decides *when*.

Each app declares its own jobs in a ``jobs.py`` whose ``scheduled_jobs()``
returns them (``jobs_declared`` collects them, in INSTALLED_APPS order). A job
is a dict:

- ``id``: its name in the log and in SchedulerJobRun;
- ``command``: the argv after ``manage.py``; it runs as a subprocess at its
  wall-clock time in TIME_ZONE: ``hour``, ``minute`` and optionally
  ``day_of_week`` (cron fields: ``"*"``, ``"*/10"``, ``"mon"``...);
  ``run_at_start``: also run at the scheduler's start when the current period
  has not run (a new installation gets today's challenge at once);
- or ``every_seconds`` and ``call`` (a dotted path to a function of no
  arguments): a light in-process poll, such as training's "start the runs
  staff asked for".

Before a timed job starts, its (job id, scheduled time) row is claimed in
SchedulerJobRun: two schedulers make one run, and a scheduler that starts
after a missed time (within SCHEDULER_MISFIRE_GRACE) sees that nobody ran it
and runs it once.
"""

from __future__ import annotations

import collections
import logging
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string, module_has_submodule

from config.models import SchedulerJobRun

logger = logging.getLogger("crowdlens.scheduler")

_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def jobs_declared() -> list[dict]:
    """Every app's scheduled jobs (its ``jobs.scheduled_jobs()``), or settings.SCHEDULER_JOBS where a test sets it."""
    override = getattr(settings, "SCHEDULER_JOBS", None)
    if override is not None:
        return list(override)
    jobs: list[dict] = []
    for app in apps.get_app_configs():
        if module_has_submodule(app.module, "jobs"):
            jobs += import_string(f"{app.name}.jobs.scheduled_jobs")()
    ids = [job["id"] for job in jobs]
    if len(ids) != len(set(ids)):
        raise ValueError(f"two scheduled jobs share an id: {sorted(i for i in ids if ids.count(i) > 1)}")
    return jobs


def timed(jobs: list[dict]) -> list[dict]:
    """The jobs that run a command at wall-clock times (not the in-process polls)."""
    return [job for job in jobs if "command" in job]


def polls(jobs: list[dict]) -> list[dict]:
    return [job for job in jobs if "every_seconds" in job]


def job_trigger(job: dict) -> CronTrigger:
    return CronTrigger(hour=job["hour"], minute=job["minute"], day_of_week=job.get("day_of_week", "*"),
                       timezone=ZoneInfo(settings.TIME_ZONE))


def last_fire_time(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The latest time at or before ``now`` the trigger fired (looks back eight days)."""
    now = now.astimezone(trigger.timezone)
    fire = trigger.get_next_fire_time(None, now - timedelta(days=8))
    last = None
    while fire is not None and fire <= now:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


def jobs_missed(jobs: list[dict], *, now: datetime | None = None) -> list[tuple[dict, datetime]]:
    """Jobs whose latest scheduled time passed within the grace and that nobody ran.

    Only times after the installation's scheduler first ran a job count: a
    fresh installation has missed nothing (it did not exist at 02:00).
    """
    now = now or timezone.now()
    first = SchedulerJobRun.objects.order_by("started_at").values_list("started_at", flat=True).first()
    if first is None:
        return []
    grace = timedelta(seconds=settings.SCHEDULER_MISFIRE_GRACE)
    missed = []
    for job in jobs:
        last = last_fire_time(job_trigger(job), now)
        if last is None or now - last > grace or last < first:
            continue
        if not SchedulerJobRun.objects.filter(job_id=job["id"], scheduled_for=last).exists():
            missed.append((job, last))
    return missed


def jobs_due_at_start(jobs: list[dict], *, now: datetime | None = None) -> list[tuple[dict, datetime]]:
    """Jobs marked ``run_at_start`` whose current period has not run yet (whatever the grace).

    challenges_rotate is one: a new installation gets today's challenge when
    the scheduler first starts, not after the next midnight.
    """
    now = now or timezone.now()
    due = []
    for job in jobs:
        if not job.get("run_at_start"):
            continue
        last = last_fire_time(job_trigger(job), now)
        if last is not None and not SchedulerJobRun.objects.filter(job_id=job["id"], scheduled_for=last).exists():
            due.append((job, last))
    return due


def catch_up_plan(missed: list[tuple[dict, datetime]]) -> list[tuple[dict, datetime, list[tuple[dict, datetime]]]]:
    """One catch-up per command: entries that run the same command (an hourly job written as 24
    entries, say) coalesce into one run at the latest missed time; the rest are recorded as covered."""
    groups: dict[tuple, list[tuple[dict, datetime]]] = {}
    for job, when in missed:
        groups.setdefault(tuple(job["command"]), []).append((job, when))
    plan = []
    for entries in groups.values():
        entries.sort(key=lambda e: e[1])
        job, when = entries[-1]
        plan.append((job, when, entries[:-1]))
    return plan


def scheduler_job_claim(*, job_id: str, scheduled_for: datetime) -> SchedulerJobRun | None:
    try:
        with transaction.atomic():
            return SchedulerJobRun.objects.create(job_id=job_id, scheduled_for=scheduled_for)
    except IntegrityError:
        return None


def manage_py_argv(argv: list[str]) -> list[str]:
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), *argv]


def run_command(argv: list[str], *, label: str) -> tuple[int, str]:
    """Run `manage.py <argv>` in a subprocess, echo its output, return (exit code, last lines)."""
    tail: collections.deque[str] = collections.deque(maxlen=60)
    process = subprocess.Popen(manage_py_argv(argv), cwd=settings.BASE_DIR, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    with _children_lock:
        _children.add(process)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            logger.info("[%s] %s", label, line)
        code = process.wait()
    finally:
        with _children_lock:
            _children.discard(process)
    return code, "\n".join(tail)


def scheduled_job_run(job: dict, scheduled_for: datetime | None = None,
                      covers: list[tuple[dict, datetime]] = ()) -> int | None:
    """The scheduler's job function: claim this scheduled time, run the command, record the result.

    ``covers``: other missed (job, time) pairs this run stands for (see catch_up_plan)."""
    try:
        scheduled_for = scheduled_for or last_fire_time(job_trigger(job), timezone.now())
        claim = scheduler_job_claim(job_id=job["id"], scheduled_for=scheduled_for)
        if claim is None:
            logger.info("%s at %s was already run by another scheduler", job["id"], scheduled_for)
            return None
        for other, when in covers:
            covered = scheduler_job_claim(job_id=other["id"], scheduled_for=when)
            if covered is not None:
                SchedulerJobRun.objects.filter(pk=covered.pk).update(
                    finished_at=timezone.now(), output_tail=f"Missed; coalesced into {job['id']} at {scheduled_for}.")
        logger.info("%s (scheduled for %s): manage.py %s", job["id"], scheduled_for, " ".join(job["command"]))
        code, tail = run_command(list(job["command"]), label=job["id"])
        SchedulerJobRun.objects.filter(pk=claim.pk).update(finished_at=timezone.now(), exit_code=code, output_tail=tail)
        (logger.info if code == 0 else logger.error)("%s finished with exit code %s", job["id"], code)
        return code
    finally:
        release_connection()


def release_connection() -> None:
    """Jobs run in the scheduler's worker threads: give their database connection back when done."""
    if threading.current_thread() is not threading.main_thread():
        connection.close()


def poll_run(job: dict):
    """The scheduler's function for an ``every_seconds`` job: call it, give the thread's connection back."""
    try:
        return import_string(job["call"])()
    finally:
        release_connection()


def children_stop(timeout: float = 30.0) -> None:
    """SIGTERM every running job, wait for them to stop cleanly, then kill what is left."""
    with _children_lock:
        children = list(_children)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
