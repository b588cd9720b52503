"""Runs and model versions in the admin: progress, log, phase times, metrics, charts, starting and cancelling a run."""

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from training.services.runs import training_run_cancel, training_run_request
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

    def test_starting_a_run_asks_first_and_says_whose_settings_apply(self, admin_client):
        import html
        import re

        page = re.sub(r"\s+", " ", html.unescape(admin_client.get("/admin/training/trainingrun/request/")
                                                  .content.decode()))
        assert "Start a forced training run" in page and "Yes, queue a training run" in page
        assert "The scheduler's (or the worker's) settings apply" in page
        assert "not this web process's or an admin's shell" in page
        assert not TrainingRun.objects.exists()  # asking is not starting

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


def running_run() -> TrainingRun:
    return TrainingRun.objects.create(status=RunStatus.RUNNING, active=True, phase="features", percent=41.0,
                                      started_at=timezone.now(), heartbeat_at=timezone.now())


def staff_with(django_user_model, *codenames):
    user = django_user_model.objects.create_user("operator", password="operator-pass-1", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="training", codename__in=codenames))
    return user


@pytest.mark.django_db
class TestCancellingARunInTheAdmin:
    def test_a_running_run_is_cancelled_after_a_confirmation_page(self, admin_client, admin_user):
        run = running_run()
        change_url = f"/admin/training/trainingrun/{run.pk}/change/"
        cancel_url = f"/admin/training/trainingrun/{run.pk}/cancel/"
        page = admin_client.get(change_url).content.decode()
        assert "Cancel this run" in page and cancel_url in page

        confirm = admin_client.get(cancel_url)
        assert confirm.status_code == 200
        assert f"Yes, cancel run #{run.pk}" in confirm.content.decode() and 'method="post"' in confirm.content.decode()
        run.refresh_from_db()
        assert run.cancel_requested_at is None  # looking is not cancelling

        response = admin_client.post(cancel_url, follow=True)
        assert response.redirect_chain == [(change_url, 302)]
        page = response.content.decode()
        assert f"Cancel of run #{run.pk} requested" in page
        assert "Cancel requested at" in page and "by admin; the run stops at its next check" in page
        assert "Cancel this run" not in page
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING and run.cancel_requested_by == admin_user  # the process ends it
        assert "cancel requested by admin" in admin_client.get("/admin/training/trainingrun/").content.decode()

    def test_a_queued_run_is_cancelled_at_once(self, admin_client):
        admin_client.post("/admin/training/trainingrun/request/")
        run = TrainingRun.objects.get()
        response = admin_client.post(f"/admin/training/trainingrun/{run.pk}/cancel/", follow=True)
        assert f"Run #{run.pk} was cancelled before it started." in response.content.decode()
        run.refresh_from_db()
        assert run.status == RunStatus.CANCELLED and run.finished_at is not None

    def test_a_finished_run_offers_no_cancel_and_refuses_one(self, admin_client):
        run = finished_run()
        assert "Cancel this run" not in admin_client.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
        assert "nothing to cancel" in admin_client.get(f"/admin/training/trainingrun/{run.pk}/cancel/").content.decode()
        response = admin_client.post(f"/admin/training/trainingrun/{run.pk}/cancel/", follow=True)
        assert f"Run #{run.pk} has already ended (succeeded); there is nothing to cancel." in response.content.decode()
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED and run.cancel_requested_at is None

    def test_it_needs_the_change_permission(self, client, django_user_model):
        run = running_run()
        operator = staff_with(django_user_model, "view_trainingrun")
        client.force_login(operator)
        page = client.get(f"/admin/training/trainingrun/{run.pk}/change/")
        assert page.status_code == 200 and "Cancel this run" not in page.content.decode()
        assert client.get(f"/admin/training/trainingrun/{run.pk}/cancel/").status_code == 403
        assert client.post(f"/admin/training/trainingrun/{run.pk}/cancel/").status_code == 403
        run.refresh_from_db()
        assert run.cancel_requested_at is None

        operator.user_permissions.add(Permission.objects.get(codename="change_trainingrun"))
        client.force_login(django_user_model.objects.get(pk=operator.pk))  # fresh: permission cache
        assert "Cancel this run" in client.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
        assert client.post(f"/admin/training/trainingrun/{run.pk}/cancel/").status_code == 302
        run.refresh_from_db()
        assert run.cancel_requested_by == operator

    def test_anonymous_visitors_are_sent_to_the_login_page(self, client):
        run = running_run()
        response = client.post(f"/admin/training/trainingrun/{run.pk}/cancel/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        run.refresh_from_db()
        assert run.cancel_requested_at is None

    def test_a_cancelled_run_page_says_who_cancelled_it(self, admin_client, admin_user):
        queued, _ = training_run_request(user=admin_user)
        run, _ = training_run_cancel(run=queued, by=admin_user)
        page = admin_client.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
        assert "Cancelled" in page and "by admin." in page and "Cancel this run" not in page
        assert "Cancelled" in admin_client.get("/admin/training/trainingrun/?status__exact=cancelled").content.decode()
