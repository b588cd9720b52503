"""Runs: the one-active-run claim, stale detection, requests from the admin, skips, failures, cancelling."""

import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from config.domain_errors import Conflict
from config.errors import status_for
from tests.training.processes import BASE, database_url, read_until, rows, subprocess_env
from training import jobs
from training.hparams import hparams_as_recorded, hparams_from_settings
from training.services.datasets import dataset_version_freeze
from training.services.execute import training_run_execute
from training.services.reporter import Heartbeat, RunReporter
from training.services.runs import (
    training_run_cancel,
    training_run_claim,
    training_run_heartbeat,
    training_run_request,
    training_runs_fail_stale,
)
from training.models import ModelVersion, RunStatus, TrainingRun


def age(run, seconds):
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


@pytest.mark.django_db
class TestTrainingRunClaim:
    def test_it_gives_the_claim_to_one_run_at_a_time(self):
        first = training_run_claim(trigger="scheduler")
        assert first is not None and first.active and first.status == RunStatus.RUNNING
        assert training_run_claim(trigger="manual") is None
        assert TrainingRun.objects.count() == 1

    def test_it_fails_a_stale_run_and_lets_the_next_one_proceed(self, settings):
        settings.TRAINING_STALE_AFTER = 600
        dead = training_run_claim()
        age(dead, 300)
        assert training_run_claim() is None  # still within the timeout: presumed alive
        age(dead, 601)
        nxt = training_run_claim()
        assert nxt is not None and nxt.pk != dead.pk
        dead.refresh_from_db()
        assert dead.status == RunStatus.FAILED and dead.active is None
        assert dead.error.startswith("Stale: no heartbeat since")
        assert dead.decisions[-1]["decision"] == "stale"

    def test_a_heartbeat_keeps_a_run_alive_and_reports_a_lost_claim(self, settings):
        settings.TRAINING_STALE_AFTER = 600
        run = training_run_claim()
        age(run, 601)
        assert training_run_heartbeat(run_id=run.pk)
        assert training_run_claim() is None
        age(run, 601)
        training_runs_fail_stale()
        assert not training_run_heartbeat(run_id=run.pk)

    def test_it_picks_up_the_run_an_admin_requested(self, admin_user):
        requested, created = training_run_request(user=admin_user)
        again, created_again = training_run_request(user=admin_user)
        assert created and not created_again and again.pk == requested.pk
        assert training_run_claim(queued_only=True).pk == requested.pk
        requested.refresh_from_db()
        assert requested.status == RunStatus.RUNNING and requested.force and requested.trigger == "admin"
        assert training_run_claim(queued_only=True) is None


def in_memory_sqlite() -> bool:
    return connection.vendor == "sqlite" and connection.is_in_memory_db()


# Each process connects, says READY and waits for a line on its standard input; both are then released
# at once, and only the claim itself is left to race.
CLAIM_WHEN_RELEASED = (
    "import sys; from django.db import connection; from training.services.runs import training_run_claim; "
    "connection.ensure_connection(); print('READY', flush=True); sys.stdin.readline(); "
    "run = training_run_claim(trigger='scheduler'); print('CLAIMED' if run else 'REFUSED', flush=True)")


@pytest.mark.django_db(transaction=True)
class TestConcurrentClaims:
    def test_two_processes_claiming_at_the_same_moment_make_one_run(self, file_db, tmp_path):
        """Two hosts' schedulers (or a scheduler and an admin's `train`) at the same moment: one run.

        On PostgreSQL the processes share the test database; SQLite's in-memory test database is private
        to this process, so there they share a migrated file database, as two processes of `make run` do."""
        env = subprocess_env(file_db, tmp_path)
        if not in_memory_sqlite():
            env["DATABASE_URL"] = database_url(connection.settings_dict)
        procs = [subprocess.Popen([sys.executable, "manage.py", "shell", "-c", CLAIM_WHEN_RELEASED], cwd=BASE, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        try:
            for proc in procs:
                ready, output = read_until(proc, "READY", timeout=120)
                assert ready, output
            for proc in procs:
                proc.stdin.write("go\n")
                proc.stdin.flush()
            outputs = [proc.communicate(timeout=120)[0] for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
        verdicts = sorted(o.strip().splitlines()[-1] for o in outputs)
        assert verdicts == ["CLAIMED", "REFUSED"], outputs
        if in_memory_sqlite():
            assert rows(file_db, "SELECT count(*), max(active) FROM training_trainingrun") == [(1, 1)]
        else:
            assert list(TrainingRun.objects.values_list("active", "status")) == [(True, RunStatus.RUNNING)]


@pytest.mark.django_db
class TestTrainCommand:
    def test_it_skips_when_fewer_than_two_labels_have_enough_photos(self, photos, capsys):
        photos.add("red-disc", 5)
        photos.add("green-bar", 2)
        call_command("train", "--no-progress")
        run = TrainingRun.objects.get()
        assert run.status == RunStatus.SKIPPED and run.active is None
        assert "Only 1 label(s)" in run.decisions[-1]["detail"]
        assert "skipped" in capsys.readouterr().out

    def test_it_skips_without_force_when_no_approved_photo_changed(self, photos, capsys):
        photos.add("red-disc", 5)
        photos.add("green-bar", 5)
        frozen = dataset_version_freeze()
        hparams = hparams_as_recorded(hparams_from_settings())
        last = TrainingRun.objects.create(status=RunStatus.SUCCEEDED, dataset_version=frozen.version, hparams=hparams,
                                          finished_at=timezone.now())
        call_command("train", "--no-progress")
        skipped = TrainingRun.objects.exclude(pk=last.pk).get()
        assert skipped.status == RunStatus.SKIPPED
        assert skipped.decisions[-1]["decision"] == "skip"
        assert f"since run #{last.pk}" in skipped.decisions[-1]["detail"]
        assert "Run #" in capsys.readouterr().out

    def test_it_says_so_and_does_nothing_while_another_run_holds_the_claim(self, photos, capsys):
        other = training_run_claim()
        call_command("train", "--no-progress", "--force")
        assert f"Run #{other.pk} is already in progress" in capsys.readouterr().out
        assert TrainingRun.objects.count() == 1

    @pytest.mark.slow
    def test_it_fails_with_a_message_naming_the_setting_when_weights_are_missing(self, photos, tiny_training, tmp_path):
        tiny_training.TRAINING_BASE_WEIGHTS = str(tmp_path / "missing.h5")
        photos.add("red-disc", 5)
        photos.add("green-bar", 5)
        with pytest.raises(CommandError) as failure:
            call_command("train", "--no-progress")
        run = TrainingRun.objects.get()
        assert run.status == RunStatus.FAILED and run.active is None
        assert "TRAINING_BASE_WEIGHTS" in run.error and "TRAINING_BASE_WEIGHTS" in str(failure.value)


@pytest.mark.django_db
class TestTrainCommandRepeat:
    def test_it_fails_clearly_for_an_unknown_dataset_version(self):
        with pytest.raises(CommandError, match="There is no dataset version 99"):
            call_command("train", "--no-progress", "--dataset-version", "99")
        assert TrainingRun.objects.get().status == RunStatus.FAILED


@pytest.mark.django_db
@pytest.mark.slow
class TestStoppingARun:
    def test_a_stop_request_ends_the_run_as_failed_and_frees_the_claim(self, photos, tiny_training):
        photos.add("red-disc", 5)
        photos.add("green-bar", 5)
        stop = threading.Event()
        stop.set()  # SIGTERM arrived: the pipeline stops at its next check
        run = training_run_execute(run=training_run_claim(), stop_event=stop)
        assert run.status == RunStatus.FAILED and run.active is None
        assert run.error == "Stopped: asked to stop."
        assert training_run_claim() is not None  # the next run proceeds at once


@pytest.mark.django_db
class TestCancellingARun:
    def test_a_queued_run_is_cancelled_at_once_and_the_scheduler_never_starts_it(self, admin_user, monkeypatch):
        queued, _ = training_run_request(user=admin_user)
        run, changed = training_run_cancel(run=queued, by=admin_user)
        assert changed and run.status == RunStatus.CANCELLED and run.is_finished and run.active is None
        assert run.finished_at is not None and run.started_at is None
        assert run.cancel_requested_by == admin_user and run.cancel_requested_at is not None
        assert run.error == "Cancelled by admin." and run.decisions[-1]["decision"] == "cancelled"
        assert "Cancelled by admin before it started." in run.log

        started = []
        monkeypatch.setattr(jobs, "run_command", lambda argv, label: started.append(argv) or (0, ""))
        assert jobs.training_requests_poll() is None and started == []
        assert training_run_claim(queued_only=True) is None
        nightly = training_run_claim(trigger="scheduler")  # the claim is free for the next run
        assert nightly is not None and nightly.pk != run.pk
        run.refresh_from_db()
        assert run.status == RunStatus.CANCELLED

    def test_a_queued_run_the_scheduler_claimed_meanwhile_is_asked_to_stop_instead(self, admin_user):
        queued, _ = training_run_request(user=admin_user)
        assert training_run_claim(queued_only=True).pk == queued.pk  # the scheduler was first
        run, changed = training_run_cancel(run=queued, by=admin_user)  # the admin's page still said queued
        assert changed and run.status == RunStatus.RUNNING and run.active
        assert run.cancel_requested_by == admin_user and run.finished_at is None

    def test_a_running_run_gets_the_request_once(self, admin_user, django_user_model):
        run = training_run_claim()
        run, changed = training_run_cancel(run=run, by=admin_user)
        assert changed and run.status == RunStatus.RUNNING and run.active  # its own process ends it
        first = run.cancel_requested_at
        other = django_user_model.objects.create_user("other", is_staff=True)
        run, changed = training_run_cancel(run=run, by=other)
        assert not changed and run.cancel_requested_at == first and run.cancel_requested_by == admin_user

    def test_a_finished_run_is_refused_and_left_as_it_was(self, admin_user):
        run = TrainingRun.objects.create(status=RunStatus.SUCCEEDED, finished_at=timezone.now(), log="done")
        before = model_to_dict(run)
        with pytest.raises(Conflict) as refused:
            training_run_cancel(run=run, by=admin_user)
        assert status_for(refused.value) == 409 and refused.value.code == "run_finished"
        assert "already ended (succeeded)" in refused.value.message
        run.refresh_from_db()
        assert model_to_dict(run) == before

    def test_a_run_that_began_publishing_is_refused(self, admin_user):
        run = training_run_claim()
        assert RunReporter(run).publish_begins()
        with pytest.raises(Conflict) as refused:
            training_run_cancel(run=run, by=admin_user)
        assert refused.value.code == "run_publishing"
        run.refresh_from_db()
        assert run.phase == "publish" and run.cancel_requested_at is None

    def test_a_run_asked_to_cancel_never_begins_publishing(self, admin_user):
        run = training_run_claim()
        reporter = RunReporter(run)
        assert reporter.cancel_request is None and not reporter.should_stop()
        training_run_cancel(run=TrainingRun.objects.get(pk=run.pk), by=admin_user)
        assert not reporter.publish_begins()  # it looks once more at the point of no return
        assert reporter.cancel_request.by == "admin" and reporter.should_stop() and not reporter.lost_claim
        assert TrainingRun.objects.get(pk=run.pk).phase != "publish"

    def test_the_heartbeat_brings_the_request_to_the_running_process(self, admin_user):
        run = training_run_claim()
        heartbeat = Heartbeat(run.pk, 30)
        reporter = RunReporter(run)
        reporter.heartbeat = heartbeat
        heartbeat.beat()
        assert heartbeat.cancel is None and not reporter.should_stop()
        training_run_cancel(run=run, by=admin_user)
        heartbeat.beat()
        assert heartbeat.cancel.by == "admin" and reporter.should_stop() and not heartbeat.lost


def train_for_long(tiny_training) -> None:
    """Tiny settings with hundreds of head epochs: a run that is surely still training when it is cancelled."""
    tiny_training.TRAINING_VARIANTS = ("float32", "int8")
    tiny_training.TRAINING_EPOCHS_HEAD = 500
    tiny_training.TRAINING_EARLY_STOPPING_PATIENCE = 500


def assert_cancelled_cleanly(run: TrainingRun, by: str) -> None:
    assert run.status == RunStatus.CANCELLED, run.error + run.log
    assert run.active is None and run.finished_at is not None and run.error == f"Cancelled by {by}."
    assert run.decisions[-1]["decision"] == "cancelled" and "nothing was published" in run.decisions[-1]["detail"]
    assert f"Cancelled by {by}" in run.log
    assert not ModelVersion.objects.exists()
    assert training_run_claim() is not None  # the claim is released: the next run proceeds


@pytest.mark.django_db
@pytest.mark.slow
class TestCancellingARunningRun:
    def test_it_stops_at_the_next_check_and_ends_cancelled(self, tiny_training, three_classes, admin_user):
        train_for_long(tiny_training)
        asked = []

        def on_progress(phase, percent):  # the admin clicks while the head trains (same thread, same connection)
            if phase == "train_head" and not asked:
                asked.append(time.monotonic())
                training_run_cancel(run=TrainingRun.objects.get(pk=claimed.pk), by=admin_user)

        claimed = training_run_claim()
        run = training_run_execute(run=claimed, on_progress=on_progress)
        assert asked and time.monotonic() - asked[0] < 30
        assert_cancelled_cleanly(run, "admin")
        assert "during train_head" in run.decisions[-1]["detail"]
        assert "train_head" in run.phase_seconds or run.phase == "train_head"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
class TestCancellingARunInAnotherProcess:
    def test_the_training_thread_notices_a_cancel_from_elsewhere_within_seconds(self, tiny_training, three_classes,
                                                                                  admin_user):
        if in_memory_sqlite():
            pytest.skip("threads on shared-cache in-memory SQLite lock tables; runs on PostgreSQL")
        train_for_long(tiny_training)
        tiny_training.TRAINING_HEARTBEAT_SECONDS = 1
        claimed = training_run_claim()
        finished = []

        def train():
            try:
                finished.append(training_run_execute(run=claimed))
            finally:
                connection.close()

        thread = threading.Thread(target=train)
        thread.start()
        try:
            deadline = time.monotonic() + 180
            while TrainingRun.objects.get(pk=claimed.pk).phase not in ("train_head", "fine_tune"):
                assert thread.is_alive() and time.monotonic() < deadline, "the run never reached training"
                time.sleep(0.1)
            # As the admin does: its own copy of the row (the training thread's copy is not touched).
            run, changed = training_run_cancel(run=TrainingRun.objects.get(pk=claimed.pk), by=admin_user)
            assert changed and run.status == RunStatus.RUNNING
            asked = time.monotonic()
            thread.join(timeout=60)
            assert not thread.is_alive(), "the run did not stop within 60 s of the cancel"
            assert time.monotonic() - asked < 30
        finally:
            thread.join()
        assert_cancelled_cleanly(TrainingRun.objects.get(pk=claimed.pk), "admin")
