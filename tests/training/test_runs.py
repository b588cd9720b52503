"""Runs: the one-active-run claim, stale detection, requests from the admin, skips, failures."""

import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from training import services
from training.models import RunStatus, TrainingRun


def age(run, seconds):
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


@pytest.mark.django_db
class TestTrainingRunClaim:
    def test_it_gives_the_claim_to_one_run_at_a_time(self):
        first = services.training_run_claim(trigger="scheduler")
        assert first is not None and first.active and first.status == RunStatus.RUNNING
        assert services.training_run_claim(trigger="manual") is None
        assert TrainingRun.objects.count() == 1

    def test_it_fails_a_stale_run_and_lets_the_next_one_proceed(self, settings):
        settings.TRAINING_STALE_AFTER = 600
        dead = services.training_run_claim()
        age(dead, 300)
        assert services.training_run_claim() is None  # still within the timeout: presumed alive
        age(dead, 601)
        nxt = services.training_run_claim()
        assert nxt is not None and nxt.pk != dead.pk
        dead.refresh_from_db()
        assert dead.status == RunStatus.FAILED and dead.active is None
        assert dead.error.startswith("Stale: no heartbeat since")
        assert dead.decisions[-1]["decision"] == "stale"

    def test_a_heartbeat_keeps_a_run_alive_and_reports_a_lost_claim(self, settings):
        settings.TRAINING_STALE_AFTER = 600
        run = services.training_run_claim()
        age(run, 601)
        assert services.training_run_heartbeat(run_id=run.pk)
        assert services.training_run_claim() is None
        age(run, 601)
        services.training_runs_fail_stale()
        assert not services.training_run_heartbeat(run_id=run.pk)

    def test_it_picks_up_the_run_an_admin_requested(self, admin_user):
        requested, created = services.training_run_request(user=admin_user)
        again, created_again = services.training_run_request(user=admin_user)
        assert created and not created_again and again.pk == requested.pk
        assert services.training_run_claim(queued_only=True).pk == requested.pk
        requested.refresh_from_db()
        assert requested.status == RunStatus.RUNNING and requested.force and requested.trigger == "admin"
        assert services.training_run_claim(queued_only=True) is None


def in_memory_sqlite() -> bool:
    return connection.vendor == "sqlite" and connection.is_in_memory_db()


@pytest.mark.django_db(transaction=True)
class TestConcurrentClaims:
    def test_two_claims_at_the_same_moment_make_one_run(self):
        if in_memory_sqlite():
            pytest.skip("shared-cache in-memory SQLite locks tables between threads; the same race runs on a "
                        "file database in test_scheduler.py, and here on PostgreSQL")
        barrier = threading.Barrier(2)
        results = []

        def claim():
            try:
                barrier.wait()
                results.append(services.training_run_claim(trigger="scheduler"))
            finally:
                connection.close()

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r is None for r in results) == [False, True]
        assert TrainingRun.objects.count() == 1


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
        frozen = services.dataset_version_freeze()
        hparams = services._jsonable(__import__("dataclasses").asdict(services.hparams_from_settings()))
        last = TrainingRun.objects.create(status=RunStatus.SUCCEEDED, dataset_version=frozen.version, hparams=hparams,
                                          finished_at=timezone.now())
        call_command("train", "--no-progress")
        skipped = TrainingRun.objects.exclude(pk=last.pk).get()
        assert skipped.status == RunStatus.SKIPPED
        assert skipped.decisions[-1]["decision"] == "skip"
        assert f"since run #{last.pk}" in skipped.decisions[-1]["detail"]
        assert "Run #" in capsys.readouterr().out

    def test_it_says_so_and_does_nothing_while_another_run_holds_the_claim(self, photos, capsys):
        other = services.training_run_claim()
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
        run = services.training_run_execute(run=services.training_run_claim(), stop_event=stop)
        assert run.status == RunStatus.FAILED and run.active is None
        assert run.error == "Stopped: asked to stop."
        assert services.training_run_claim() is not None  # the next run proceeds at once
