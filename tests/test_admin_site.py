"""The admin as a whole: it names the product, writes dates one way, titles photos in words, shows no Save
button where nothing can be saved and no progress bar for a run that never trained."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from config.formats import datetime_display
from tests.collector.test_admin_review import group_reviewer, logged_in
from tests.factories import make_label, make_photo
from tests.training.test_admin import finished_run
from training.models import ModelVersion, RunStatus, TrainingRun, VersionStatus

WHEN = dt.datetime(2026, 3, 7, 14, 5, 9, tzinfo=dt.timezone.utc)


@pytest.mark.django_db
class TestAdminSite:
    def test_it_says_crowdlens(self, admin_client):
        html = admin_client.get("/admin/").content.decode()
        assert "<title>Review, training, challenges and newsletter | Crowdlens admin</title>" in html
        assert '<div id="site-name"><a href="/admin/">Crowdlens</a></div>' in html
        assert "Django administration" not in html and "Django site admin" not in html

    def test_a_photo_page_is_titled_in_words(self, db):
        photo = make_photo(label=make_label("daisy", name="Daisy"))
        assert str(photo) == f"Photo #{photo.pk} · Daisy · pending"
        html = logged_in(group_reviewer()).get(f"/admin/collector/photo/{photo.pk}/change/").content.decode()
        assert f"<title>Photo #{photo.pk} · Daisy · pending | Change photo | Crowdlens admin</title>" in html


@pytest.mark.django_db
class TestDates:
    def test_one_format_everywhere(self, admin_client, settings):
        settings.TIME_ZONE = "UTC"
        assert datetime_display(WHEN) == "2026-03-07 14:05"
        assert datetime_display(WHEN.isoformat()) == "2026-03-07 14:05"  # as stored in JSON fields
        assert datetime_display(None) == "-"
        run = finished_run()
        run.decisions = [{"at": WHEN.isoformat(), "decision": "gate_accuracy_worse", "detail": "Held back"}]
        run.cancel_requested_at, run.started_at = WHEN, WHEN
        run.save()
        pages = [admin_client.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode(),
                 admin_client.get("/admin/training/trainingrun/").content.decode()]
        photo = make_photo(label=make_label("daisy"))
        type(photo).objects.filter(pk=photo.pk).update(created_at=WHEN)
        pages.append(admin_client.get("/admin/collector/photo/").content.decode())
        for html in pages:
            assert "2026-03-07 14:05" in html
            assert not re.search(r"Mar(ch|\.)? 7|p\.m\.|a\.m\.|14:05:09", html), "a second date format"


def published_version() -> ModelVersion:
    run = finished_run()
    return ModelVersion.objects.create(version=3, status=VersionStatus.PUBLISHED, run=run,
                                       dataset_version=run.dataset_version, strategy="head_only",
                                       labels=["cat", "dog"], published_at=timezone.now())


@pytest.mark.django_db
class TestTrainingAdmin:
    def test_a_model_version_page_has_no_save_buttons(self, admin_client):
        version = published_version()
        url = f"/admin/training/modelversion/{version.pk}/change/"
        html = admin_client.get(url).content.decode()
        assert "v3" in html
        for button in ('name="_save"', 'name="_continue"', 'name="_addanother"'):
            assert button not in html
        assert admin_client.post(url, {"strategy": "full"}).status_code == 403
        version.refresh_from_db()
        assert version.strategy == "head_only"
        # The list keeps its action (putting a version in service needs the change permission).
        assert "put_in_service" in admin_client.get("/admin/training/modelversion/").content.decode()

    def test_a_staff_user_with_the_change_permission_still_gets_the_action(self, django_user_model, client):
        user = django_user_model.objects.create_user("ops", password="ops-pass-12345", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__in=["change_modelversion"]))
        client.force_login(user)
        published_version()
        assert "put_in_service" in client.get("/admin/training/modelversion/").content.decode()

    def test_a_skipped_run_shows_no_progress_bar(self, admin_client):
        TrainingRun.objects.create(status=RunStatus.SKIPPED, percent=3.0, phase="dataset", started_at=timezone.now(),
                                   finished_at=timezone.now())
        html = admin_client.get("/admin/training/trainingrun/").content.decode()
        assert "skipped: nothing was trained" in html
        assert "<progress" not in html

