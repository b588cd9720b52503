"""Runs and model versions in the admin: progress, log, phase times, metrics, charts, starting a run."""

import pytest
from django.utils import timezone

from training.models import DatasetVersion, RunStatus, TrainingRun


def finished_run() -> TrainingRun:
    dataset = DatasetVersion.objects.create(fingerprint="f" * 64, cutoff=timezone.now(), labels=["cat", "dog"],
                                            counts={"train": {"cat": 8, "dog": 9}, "val": {}, "test": {}},
                                            photo_count=17)
    return TrainingRun.objects.create(
        status=RunStatus.SUCCEEDED, outcome="held_back", dataset_version=dataset, strategy="head_only",
        labels=["cat", "dog"], phase_seconds={"features": 12.5, "train_head": 3.25},
        history={"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7], "accuracy": [0.5, 0.7, 0.9],
                 "val_accuracy": [0.5, 0.6, 0.7]},
        metrics={"float32": {"accuracy": 0.75, "size_bytes": 2048, "latency_ms": 1.5, "test_examples": 4,
                             "confusion": [[2, 0], [1, 1]], "per_class": {}}},
        decisions=[{"at": timezone.now().isoformat(), "decision": "gate_accuracy_worse", "detail": "Held back: worse"}],
        log="12:00:00 started\n12:00:05 features done", started_at=timezone.now(), finished_at=timezone.now(),
    )


@pytest.mark.django_db
class TestTrainingRunAdmin:
    def test_it_lists_runs_with_progress_and_offers_to_start_one(self, admin_client):
        TrainingRun.objects.create(status=RunStatus.RUNNING, active=True, phase="features", percent=41.0,
                                   started_at=timezone.now())
        page = admin_client.get("/admin/training/trainingrun/").content.decode()
        assert "Start a training run" in page
        assert 'value="41"' in page and "features" in page

    def test_the_start_button_queues_a_run_for_the_scheduler(self, admin_client, admin_user):
        response = admin_client.post("/admin/training/trainingrun/request/")
        assert response.status_code == 302
        run = TrainingRun.objects.get()
        assert run.status == RunStatus.QUEUED and run.force and run.requested_by == admin_user
        admin_client.post("/admin/training/trainingrun/request/")
        assert TrainingRun.objects.count() == 1  # a second click does not queue a second run

    def test_a_run_page_shows_log_phases_metrics_decisions_and_charts(self, admin_client):
        run = finished_run()
        page = admin_client.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
        for text in ("features done", "12.5", "75.00%", "gate_accuracy_worse", "Held back: worse",
                     f"/admin/training/trainingrun/{run.pk}/curves.png",
                     f"/admin/training/trainingrun/{run.pk}/confusion-float32.png"):
            assert text in page, text
        for url in (f"/admin/training/trainingrun/{run.pk}/curves.png",
                    f"/admin/training/trainingrun/{run.pk}/confusion-float32.png"):
            image = admin_client.get(url)
            assert image.status_code == 200 and image["Content-Type"] == "image/png"
            assert image.content.startswith(b"\x89PNG")

    def test_charts_are_for_staff_only(self, client):
        run = finished_run()
        response = client.get(f"/admin/training/trainingrun/{run.pk}/curves.png")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
