"""`manage.py runscheduler` and the bookkeeping that makes a scheduled time run exactly once."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from config import scheduler as scheduling
from tests.training.processes import BASE, read_until, rows, subprocess_env


def stop_with_sigterm(proc: subprocess.Popen, timeout: float = 60) -> str:
    """SIGTERM until it exits (a signal that lands just before the scheduler starts finds nothing to stop);
    the rest of its output."""
    deadline = time.monotonic() + timeout
    while True:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.communicate(timeout=2)[0]
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                proc.kill()
                raise


class TestLastFireTime:
    def test_it_finds_the_latest_scheduled_time_not_after_now(self, settings):
        settings.TIME_ZONE = "Europe/Amsterdam"
        trigger = scheduling.job_trigger({"id": "x", "command": ["check"], "hour": 2, "minute": 0})
        now = datetime(2026, 11, 25, 9, 30, tzinfo=dt_timezone.utc)
        last = scheduling.last_fire_time(trigger, now)
        assert last.astimezone(dt_timezone.utc) == datetime(2026, 11, 25, 1, 0, tzinfo=dt_timezone.utc)  # 02:00 CET

    def test_it_honours_the_day_of_week(self):
        trigger = scheduling.job_trigger({"id": "x", "command": ["check"], "hour": 8, "minute": 0, "day_of_week": "mon"})
        now = datetime(2026, 11, 25, 9, 0, tzinfo=dt_timezone.utc)  # a Wednesday
        assert scheduling.last_fire_time(trigger, now).date().isoformat() == "2026-11-23"


def scheduler_ran_before(when: datetime) -> None:
    """The installation's scheduler had run a job before ``when`` (so later times can be missed)."""
    from config.models import SchedulerJobRun

    row = SchedulerJobRun.objects.create(job_id="earlier", scheduled_for=when - timedelta(days=1))
    SchedulerJobRun.objects.filter(pk=row.pk).update(started_at=when - timedelta(days=1))


@pytest.mark.django_db
class TestJobsMissed:
    JOB = {"id": "nightly", "command": ["check"], "hour": 2, "minute": 0}

    @pytest.fixture(autouse=True)
    def _installed_yesterday(self):
        scheduler_ran_before(datetime(2026, 11, 24, 0, 0, tzinfo=dt_timezone.utc))

    def test_it_runs_a_time_missed_within_the_grace_once(self, settings):
        settings.TIME_ZONE = "UTC"
        settings.SCHEDULER_MISFIRE_GRACE = 6 * 3600
        now = datetime(2026, 11, 25, 5, 0, tzinfo=dt_timezone.utc)
        missed = scheduling.jobs_missed([self.JOB], now=now)
        assert missed == [(self.JOB, datetime(2026, 11, 25, 2, 0, tzinfo=dt_timezone.utc))]
        assert scheduling.scheduler_job_claim(job_id="nightly", scheduled_for=missed[0][1]) is not None
        assert scheduling.jobs_missed([self.JOB], now=now) == []
        assert scheduling.scheduler_job_claim(job_id="nightly", scheduled_for=missed[0][1]) is None  # once

    def test_it_lets_a_time_older_than_the_grace_go(self, settings):
        settings.TIME_ZONE = "UTC"
        settings.SCHEDULER_MISFIRE_GRACE = 3600
        now = datetime(2026, 11, 25, 5, 0, tzinfo=dt_timezone.utc)
        assert scheduling.jobs_missed([self.JOB], now=now) == []


@pytest.mark.django_db
class TestFreshInstallation:
    NIGHTLY = {"id": "nightly", "command": ["check"], "hour": 2, "minute": 0}
    ROTATE = {"id": "rotate", "command": ["check"], "hour": 0, "minute": 0, "run_at_start": True}

    def test_a_new_installation_has_missed_nothing(self, settings):
        settings.TIME_ZONE = "UTC"
        now = datetime(2026, 11, 25, 5, 0, tzinfo=dt_timezone.utc)
        assert scheduling.jobs_missed([self.NIGHTLY, self.ROTATE], now=now) == []

    def test_times_before_the_scheduler_first_ran_are_not_missed(self, settings):
        settings.TIME_ZONE = "UTC"
        scheduler_ran_before(datetime(2026, 11, 26, 3, 0, tzinfo=dt_timezone.utc))  # first ran 2026-11-25 03:00
        now = datetime(2026, 11, 25, 5, 0, tzinfo=dt_timezone.utc)
        assert scheduling.jobs_missed([self.NIGHTLY], now=now) == []

    def test_a_job_marked_run_at_start_runs_once_for_its_current_period(self, settings):
        settings.TIME_ZONE = "UTC"
        now = datetime(2026, 11, 25, 15, 0, tzinfo=dt_timezone.utc)
        due = scheduling.jobs_due_at_start([self.NIGHTLY, self.ROTATE], now=now)
        assert due == [(self.ROTATE, datetime(2026, 11, 25, 0, 0, tzinfo=dt_timezone.utc))]
        scheduling.scheduler_job_claim(job_id="rotate", scheduled_for=due[0][1])
        assert scheduling.jobs_due_at_start([self.ROTATE], now=now) == []

    def test_the_challenge_rotation_runs_at_start(self):
        job = next(j for j in scheduling.jobs_declared() if j["id"] == "challenges_rotate")
        assert job["run_at_start"] is True


class TestSchedulerJobs:
    def test_the_nightly_training_is_scheduled_at_training_nightly_at(self):
        job = next(j for j in scheduling.jobs_declared() if j["id"] == "training-nightly")
        assert job["command"] == ["train", "--trigger", "scheduler"]
        assert (job["hour"], job["minute"]) == django_settings.TRAINING_NIGHTLY_AT == (2, 0)


@pytest.mark.slow
class TestRunschedulerProcess:
    def test_it_catches_up_a_missed_job_once_and_stops_cleanly_on_sigterm(self, file_db, tmp_path):
        due = timezone.now().astimezone(dt_timezone.utc) - timedelta(minutes=2)
        jobs = [{"id": "probe", "command": ["check"], "hour": due.hour, "minute": due.minute}]
        env = subprocess_env(file_db, tmp_path, TEST_SCHEDULER_JOBS=json.dumps(jobs))
        earlier = (due - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
        with sqlite3.connect(file_db, timeout=30) as conn:  # the scheduler had run before: times can be missed
            conn.execute("INSERT INTO training_schedulerjobrun (job_id, scheduled_for, started_at, output_tail) "
                         "VALUES ('earlier', ?, ?, '')", (earlier, earlier))
        first = subprocess.Popen([sys.executable, "manage.py", "runscheduler"], cwd=BASE, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 90
            done = []
            while time.monotonic() < deadline and not done:
                time.sleep(0.5)
                done = rows(file_db, "SELECT exit_code, scheduled_for FROM training_schedulerjobrun "
                                     "WHERE job_id='probe' AND exit_code IS NOT NULL")
            assert done and done[0][0] == 0, "the missed job did not run"
            first.send_signal(signal.SIGTERM)
            output, _ = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == 0, output
        assert "missed its run" in output and "Scheduler stopped." in output

        # A scheduler started again does not run the same scheduled time a second time.
        second = subprocess.Popen([sys.executable, "manage.py", "runscheduler"], cwd=BASE, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # The catch-up plan is made (and any "missed its run" printed) before the jobs are listed:
        # once "Scheduled probe" is out, the second process has decided.
        listed, before = read_until(second, "Scheduled probe", timeout=90)
        rest = stop_with_sigterm(second)
        output = before + rest
        assert listed, output
        assert "missed its run" not in output
        assert len(rows(file_db, "SELECT id FROM training_schedulerjobrun WHERE job_id='probe'")) == 1

    def test_a_fresh_installation_starts_quietly_and_runs_its_start_jobs(self, file_db, tmp_path):
        due = timezone.now().astimezone(dt_timezone.utc) - timedelta(minutes=2)
        jobs = [{"id": "nightly", "command": ["check"], "hour": due.hour, "minute": due.minute},
                {"id": "rotate", "command": ["check"], "hour": 0, "minute": 0, "run_at_start": True}]
        env = subprocess_env(file_db, tmp_path, TEST_SCHEDULER_JOBS=json.dumps(jobs))
        process = subprocess.Popen([sys.executable, "manage.py", "runscheduler"], cwd=BASE, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 90
            done = []
            while time.monotonic() < deadline and not done:
                time.sleep(0.5)
                done = rows(file_db, "SELECT exit_code FROM training_schedulerjobrun "
                                     "WHERE job_id='rotate' AND exit_code IS NOT NULL")
            assert done == [(0,)], "the start job did not run"
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert "rotate has not run since" in output
        assert "missed its run" not in output
        assert rows(file_db, "SELECT count(*) FROM training_schedulerjobrun WHERE job_id='nightly'") == [(0,)]
        # APScheduler logged these at INFO for every job it added and ran (the request poll: every 30 s);
        # the rotate job was added and ran, so they would be here.
        assert "Adding job tentatively" not in output and "Running job" not in output, output
        assert "executed successfully" not in output
        assert "AXES: BEGIN" not in output  # django-axes' start-up line, once per process (every scheduled command)


@pytest.mark.django_db
class TestCatchUpPlan:
    def test_entries_running_the_same_command_catch_up_once(self, settings, monkeypatch):
        settings.TIME_ZONE = "UTC"
        scheduler_ran_before(datetime(2026, 11, 24, 0, 0, tzinfo=dt_timezone.utc))
        settings.SCHEDULER_MISFIRE_GRACE = 3 * 3600
        hourly = [{"id": f"send-{h:02d}", "command": ["check"], "hour": h, "minute": 5} for h in range(24)]
        nightly = {"id": "nightly", "command": ["check", "--deploy"], "hour": 2, "minute": 0}
        now = datetime(2026, 11, 25, 4, 0, tzinfo=dt_timezone.utc)
        plan = scheduling.catch_up_plan(scheduling.jobs_missed([*hourly, nightly], now=now))
        assert [(job["id"], when.hour, [j["id"] for j, _ in covers]) for job, when, covers in plan] == [
            ("send-03", 3, ["send-01", "send-02"]), ("nightly", 2, [])]
        ran = []
        monkeypatch.setattr(scheduling, "run_command", lambda argv, label: ran.append(argv) or (0, "ok"))
        job, when, covers = plan[0]
        assert scheduling.scheduled_job_run(job, when, covers) == 0
        assert ran == [["check"]]
        assert [j["id"] for j, _ in scheduling.jobs_missed([*hourly, nightly], now=now)] == ["nightly"]

    def test_an_hour_may_be_a_cron_expression(self, settings):
        settings.TIME_ZONE = "UTC"
        trigger = scheduling.job_trigger({"id": "x", "command": ["check"], "hour": "*", "minute": 5})
        now = datetime(2026, 11, 25, 9, 30, tzinfo=dt_timezone.utc)
        assert scheduling.last_fire_time(trigger, now) == datetime(2026, 11, 25, 9, 5, tzinfo=dt_timezone.utc)
