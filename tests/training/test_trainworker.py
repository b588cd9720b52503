"""Training on its own host: TRAINING_WORKER=remote queues, `manage.py trainworker` takes, heartbeats show."""

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from tests.training.processes import BASE, rows, subprocess_env
from config.processes import ProcessBeat
from training import jobs, workers
from training.services import execute, runs
from config.models import ProcessHeartbeat
from training.models import RunStatus, TrainingRun


@pytest.fixture
def beat(db):
    beat = ProcessBeat(ProcessHeartbeat.Kind.TRAINWORKER, devices=[{"name": "/physical_device:CPU:0",
                                                                            "type": "CPU"}], interval=3600)
    yield beat


def age(run, seconds):
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


class TestRemoteMode:
    def test_the_nightly_job_only_queues_when_training_worker_is_remote(self, tmp_path):
        code = "from config.scheduler import jobs_declared; import json; print(json.dumps(jobs_declared()))"
        env = subprocess_env(tmp_path / "unused.sqlite3", tmp_path, TRAINING_WORKER="remote",
                             DJANGO_SETTINGS_MODULE="tests.settings")
        out = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=BASE, env=env,
                             capture_output=True, text=True, timeout=120, check=True).stdout
        job = next(j for j in json.loads(out.strip().splitlines()[-1]) if j["id"] == "training-nightly")
        assert job["command"] == ["train", "--trigger", "scheduler", "--enqueue"]

    @pytest.mark.django_db
    def test_train_enqueue_queues_one_run_and_trains_nothing(self, capsys):
        call_command("train", "--enqueue", "--trigger", "scheduler")
        call_command("train", "--enqueue", "--trigger", "scheduler")
        out = capsys.readouterr().out
        run = TrainingRun.objects.get()
        assert run.status == RunStatus.QUEUED and run.trigger == "scheduler" and not run.force
        assert run.started_at is None and run.dataset_version is None
        assert f"Run #{run.pk} queued for a training worker" in out and f"Run #{run.pk} is already queued" in out

    @pytest.mark.django_db
    def test_the_scheduler_leaves_queued_runs_to_the_workers(self, settings, admin_user, monkeypatch):
        settings.TRAINING_WORKER = "remote"
        runs.training_run_request(user=admin_user)
        monkeypatch.setattr(jobs, "run_command", lambda argv, label: pytest.fail(f"started {argv}"))
        assert jobs.training_requests_poll() is None
        assert TrainingRun.objects.get().status == RunStatus.QUEUED

    @pytest.mark.django_db
    def test_the_admin_button_says_a_worker_takes_the_run(self, settings, admin_client):
        settings.TRAINING_WORKER = "remote"
        response = admin_client.post("/admin/training/trainingrun/request/", follow=True)
        page = response.content.decode()
        assert "a training worker (manage.py trainworker) takes it" in page
        assert "waiting for a training worker" in page
        assert TrainingRun.objects.get().status == RunStatus.QUEUED


@pytest.mark.django_db
class TestTrainworkerLoop:
    def test_it_takes_a_queued_run_and_does_it(self, beat, photos):
        photos.add("red-disc", 5)  # one label: the run ends skipped, after the full claim-execute path
        queued, _ = runs.training_run_request(trigger="scheduler", force=False)
        done = workers.trainworker_loop(stop=threading.Event(), beat=beat, once=True)
        assert [r.pk for r in done] == [queued.pk]
        queued.refresh_from_db()
        assert queued.status == RunStatus.SKIPPED and queued.active is None and queued.trigger == "scheduler"
        assert queued.host and queued.pid
        assert ProcessHeartbeat.objects.get(pk=beat.row.pk).state == "idle"

    def test_with_nothing_queued_it_claims_nothing(self, beat):
        assert workers.trainworker_loop(stop=threading.Event(), beat=beat, once=True) == []
        assert TrainingRun.objects.count() == 0

    def test_a_run_left_by_a_killed_worker_is_ended_stale_and_the_next_night_runs(self, beat, settings, photos):
        settings.TRAINING_STALE_AFTER = 600
        runs.training_run_request(trigger="scheduler", force=False)
        killed = runs.training_run_claim(queued_only=True)  # the worker that took it was SIGKILLed
        tonight, _ = runs.training_run_request(trigger="scheduler", force=False)
        age(killed, 300)
        assert workers.trainworker_loop(stop=threading.Event(), beat=beat, once=True) == []  # presumed alive
        age(killed, 601)
        done = workers.trainworker_loop(stop=threading.Event(), beat=beat, once=True)
        assert [r.pk for r in done] == [tonight.pk]
        killed.refresh_from_db()
        assert killed.status == RunStatus.FAILED and killed.error.startswith("Stale: no heartbeat since")

    def test_a_stop_before_the_claim_takes_nothing(self, beat):
        runs.training_run_request(trigger="scheduler", force=False)
        stop = threading.Event()
        stop.set()
        assert workers.trainworker_loop(stop=stop, beat=beat) == []
        assert TrainingRun.objects.get().status == RunStatus.QUEUED


@pytest.mark.django_db(transaction=True)
class TestTwoWorkers:
    def test_two_workers_claiming_at_the_same_moment_never_take_the_same_run(self):
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            pytest.skip("shared-cache in-memory SQLite locks tables between threads; run with "
                        "DATABASE_URL=postgres://... (the claim's race is a PostgreSQL question)")
        for night in range(15):
            queued, _ = runs.training_run_request(trigger="scheduler", force=False)
            barrier = threading.Barrier(2)
            claimed = []

            def claim():
                try:
                    barrier.wait()
                    claimed.append(runs.training_run_claim(queued_only=True))
                finally:
                    connection.close()

            threads = [threading.Thread(target=claim) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            winners = [r for r in claimed if r is not None]
            assert [r.pk for r in winners] == [queued.pk], f"night {night}: {claimed}"
            TrainingRun.objects.filter(pk=queued.pk).update(status=RunStatus.SUCCEEDED, active=None)
        assert TrainingRun.objects.count() == 15


@pytest.mark.django_db
class TestHeartbeatsInTheAdmin:
    def test_the_scheduler_and_the_workers_are_listed_side_by_side_with_whether_they_live(self, admin_client, settings):
        settings.PROCESS_HEARTBEAT_SECONDS = 30
        now = timezone.now()
        ProcessHeartbeat.objects.create(kind="scheduler", host="sched-1", pid=11, started_at=now, beat_at=now)
        ProcessHeartbeat.objects.create(kind="trainworker", host="gpu-1", pid=22, started_at=now, beat_at=now,
                                        state="training run #7",
                                        devices=[{"name": "/physical_device:GPU:0", "type": "GPU"}])
        ProcessHeartbeat.objects.create(kind="trainworker", host="gpu-2", pid=33, started_at=now,
                                        beat_at=now - timedelta(seconds=120))
        page = admin_client.get("/admin/crowdlens/processheartbeat/").content.decode()
        assert "sched-1" in page and "gpu-1" in page and "gpu-2" in page
        assert "training run #7" in page and "/physical_device:GPU:0 (GPU)" in page
        assert page.count('alt="True"') == 2 and page.count('alt="False"') == 1  # gpu-2 missed three beats


@pytest.mark.slow
class TestTrainworkerProcess:
    def test_it_logs_its_devices_beats_and_ends_cleanly_on_sigterm(self, file_db, tmp_path):
        env = subprocess_env(file_db, tmp_path, TRAINING_WORKER="remote", PROCESS_HEARTBEAT_SECONDS="1",
                             TRAINING_WORKER_POLL_SECONDS="1")
        worker = subprocess.Popen([sys.executable, str(BASE / "manage.py"), "trainworker"], cwd=tmp_path, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 90
            beats = []
            while time.monotonic() < deadline and len({b for (b,) in beats}) < 2:
                time.sleep(0.5)
                beats += rows(file_db, "SELECT beat_at FROM training_processheartbeat WHERE kind='trainworker'")
            assert len({b for (b,) in beats}) >= 2, "the worker never beat twice"
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == 0, output
        assert "TensorFlow devices: /physical_device:CPU:0 (CPU)" in output
        assert ("No GPU found: training on the CPU." in output) or ("Training on /physical_device:GPU:0." in output)
        assert "Training worker stopped." in output
        assert rows(file_db, "SELECT state, stopped_at IS NOT NULL FROM training_processheartbeat") == [("stopped", 1)]


# The worker runs in autocommit, as `manage.py trainworker` does: inside the test-case transaction
# the connection it closes after the error could not be reopened (PostgreSQL).
@pytest.mark.django_db(transaction=True)
class TestTrainworkerLoopResilience:
    def test_a_database_error_while_looking_for_work_does_not_end_the_worker(self, beat, monkeypatch):
        from django.db import OperationalError

        queued, _ = runs.training_run_request(trigger="scheduler", force=False)
        real_claim, calls = runs.training_run_claim, []
        stop = threading.Event()

        def flaky_claim(**kwargs):
            calls.append(kwargs)
            if len(calls) == 1:
                raise OperationalError("server closed the connection unexpectedly")
            if len(calls) > 3:  # the loop never recovered: end it so the assertion below says so
                stop.set()
                return None
            return real_claim(**kwargs)

        monkeypatch.setattr(runs, "training_run_claim", flaky_claim)
        monkeypatch.setattr(execute, "training_run_execute",
                            lambda *, run, on_log, stop_event: (stop.set(), run)[1])
        done = workers.trainworker_loop(stop=stop, beat=beat, poll_seconds=0.01)
        assert len(calls) == 2 and [r.pk for r in done] == [queued.pk]


@pytest.mark.django_db
class TestHeartbeatsOnTheRunsList:
    def test_the_runs_list_says_which_processes_live_and_which_went_silent(self, admin_client, settings):
        settings.PROCESS_HEARTBEAT_SECONDS = 30
        now = timezone.now()
        ProcessHeartbeat.objects.create(kind="scheduler", host="sched-1", pid=11, started_at=now, beat_at=now,
                                        state="idle")
        ProcessHeartbeat.objects.create(kind="trainworker", host="gpu-1", pid=22, started_at=now, beat_at=now,
                                        state="training run #7",
                                        devices=[{"name": "/physical_device:GPU:0", "type": "GPU"}])
        ProcessHeartbeat.objects.create(kind="trainworker", host="gpu-2", pid=33, started_at=now,
                                        beat_at=now - timedelta(minutes=5))
        ProcessHeartbeat.objects.create(kind="trainworker", host="gpu-3", pid=44, started_at=now, beat_at=now,
                                        stopped_at=now, state="stopped")
        page = admin_client.get("/admin/training/trainingrun/").content.decode()
        assert "Scheduler (runscheduler) on sched-1 alive, idle" in page
        assert "Training worker (trainworker) on gpu-1 alive, training run #7 (/physical_device:GPU:0)" in page
        assert "Training worker (trainworker) on gpu-2 <strong>silent since" in page
        assert "gpu-3" not in page  # stopped cleanly: not a process anyone waits for
