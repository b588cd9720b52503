"""Staged rollout of a published version to a percentage of devices, and field accuracy, through the API and admin."""

import hashlib
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import client_for, make_label, make_reviewer, make_volunteer, upload
from training import selectors
from training.models import (
    DatasetVersion,
    ModelFile,
    ModelVersion,
    Rollout,
    RolloutState,
    ServiceChange,
    VersionStatus,
    device_bucket,
)
from training.services.publishing import model_version_put_in_service
from training.services.rollout import rollout_halt, rollout_rollback, rollout_set_percent, rollout_start

LATEST = "/api/v1/models/latest/"


def published(number: int, *, in_service: bool = False, labels=("cat", "dog")) -> ModelVersion:
    """A published version's rows (the manifest reads rows only; files are proven in test_models_api.py)."""
    dataset = DatasetVersion.objects.create(fingerprint=uuid.uuid4().hex, cutoff=timezone.now(), labels=list(labels))
    if in_service:
        ModelVersion.objects.filter(in_service=True).update(in_service=None)
    version = ModelVersion.objects.create(version=number, status=VersionStatus.PUBLISHED, dataset_version=dataset,
                                          strategy="head_only", labels=list(labels), published_at=timezone.now(),
                                          in_service=True if in_service else None,
                                          metrics={"int8": {"accuracy": 0.8}, "float32": {"accuracy": 0.81}})
    for variant in ("int8", "float32"):
        sha = hashlib.sha256(f"v{number}-{variant}".encode()).hexdigest()
        ModelFile.objects.create(model_version=version, variant=variant, model_key=f"models/v{number}/{variant}/m",
                                 labels_key="l", metadata_key="m", sha256=sha, size_bytes=100,
                                 input_spec={"height": 32, "width": 32, "resize": "center_crop", "dtype": "uint8",
                                             "mean": [0, 0, 0], "std": [1, 1, 1]})
    return version


def ids_in_buckets(predicate, count=5) -> list[str]:
    found = []
    for i in range(10_000):
        candidate = f"install-{i}"
        if predicate(device_bucket(candidate)):
            found.append(candidate)
            if len(found) == count:
                return found
    raise AssertionError("no install id found")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser(username="ops", password="ops-pass-1", email="ops@example.org")


@pytest.mark.django_db
class TestLatestDuringARollout:
    def test_devices_in_the_percentage_get_the_rollout_others_and_anonymous_phones_the_version_in_service(self, staff):
        published(1, in_service=True)
        published(2)
        rollout_start(version=2, percent=20, user=staff)
        client = APIClient()
        inside, outside = ids_in_buckets(lambda b: b < 20), ids_in_buckets(lambda b: b >= 20)
        for install_id in inside:
            assert client.get(LATEST, HTTP_X_INSTALL_ID=install_id).json()["version"] == 2
            assert client.get(LATEST, {"install_id": install_id}).json()["version"] == 2
        for install_id in outside:
            assert client.get(LATEST, HTTP_X_INSTALL_ID=install_id).json()["version"] == 1
        anonymous = client.get(LATEST)
        assert anonymous.json()["version"] == 1
        assert "X-Install-Id" in anonymous["Vary"]

    def test_the_header_wins_over_the_query_parameter(self, staff):
        published(1, in_service=True)
        published(2)
        rollout_start(version=2, percent=50, user=staff)
        inside, outside = ids_in_buckets(lambda b: b < 50, 1)[0], ids_in_buckets(lambda b: b >= 50, 1)[0]
        response = APIClient().get(LATEST, {"install_id": outside}, HTTP_X_INSTALL_ID=inside)
        assert response.json()["version"] == 2

    def test_the_etag_follows_what_the_device_gets(self, staff):
        published(1, in_service=True)
        published(2)
        client = APIClient()
        inside = ids_in_buckets(lambda b: b < 30, 1)[0]
        before = client.get(LATEST, HTTP_X_INSTALL_ID=inside)
        assert client.get(LATEST, HTTP_X_INSTALL_ID=inside, HTTP_IF_NONE_MATCH=before["ETag"]).status_code == 304
        rollout_start(version=2, percent=30, user=staff)
        changed = client.get(LATEST, HTTP_X_INSTALL_ID=inside, HTTP_IF_NONE_MATCH=before["ETag"])
        assert changed.status_code == 200 and changed.json()["version"] == 2 and changed["ETag"] != before["ETag"]
        # A device outside the percentage still holds a current ETag.
        outside = ids_in_buckets(lambda b: b >= 30, 1)[0]
        assert client.get(LATEST, HTTP_X_INSTALL_ID=outside, HTTP_IF_NONE_MATCH=before["ETag"]).status_code == 304

    def test_a_malformed_install_id_is_a_400_in_the_error_shape(self):
        published(1, in_service=True)
        for kwargs in ({"HTTP_X_INSTALL_ID": "has spaces in it"}, {"data": {"install_id": "x" * 129}}):
            response = APIClient().get(LATEST, **kwargs)
            assert response.status_code == 400
            assert response.json()["error"]["code"] and "install_id" in response.json()["error"]["fields"]

    def test_widening_keeps_the_devices_that_had_it_halting_and_rolling_back_return_them(self, staff):
        published(1, in_service=True)
        published(2)
        rollout_start(version=2, percent=10, user=staff)
        early = ids_in_buckets(lambda b: b < 10)
        client = APIClient()
        rollout_set_percent(percent=60, user=staff)
        assert {client.get(LATEST, HTTP_X_INSTALL_ID=i).json()["version"] for i in early} == {2}
        rollout_halt(user=staff)
        assert {client.get(LATEST, HTTP_X_INSTALL_ID=i).json()["version"] for i in early} == {1}
        rollout_set_percent(percent=60, user=staff)  # resume
        assert {client.get(LATEST, HTTP_X_INSTALL_ID=i).json()["version"] for i in early} == {2}
        rollback = rollout_rollback(user=staff)
        assert rollback.state == RolloutState.ROLLED_BACK
        assert {client.get(LATEST, HTTP_X_INSTALL_ID=i).json()["version"] for i in early} == {1}
        assert list(rollback.changes.values_list("action", "percent_from", "percent_to", "changed_by")) == [
            ("start", None, 10, staff.pk), ("widen", 10, 60, staff.pk), ("halt", 60, 60, staff.pk),
            ("resume", 60, 60, staff.pk), ("rollback", 60, 60, staff.pk)]
        assert ModelVersion.objects.get(in_service=True).version == 1

    def test_completing_puts_it_in_service_for_every_device(self, staff):
        published(1, in_service=True)
        published(2)
        rollout_start(version=2, percent=10, user=staff)
        rollout = rollout_set_percent(percent=100, user=staff)
        assert rollout.state == RolloutState.COMPLETE and rollout.open is None
        assert APIClient().get(LATEST).json()["version"] == 2
        assert ServiceChange.objects.first().to_version == 2

    def test_a_new_version_in_service_for_all_ends_the_rollout(self, staff):
        published(1, in_service=True)
        published(2)
        published(3)
        rollout_start(version=2, percent=90, user=staff)
        model_version_put_in_service(version=3, user=staff)
        assert Rollout.objects.get().state == RolloutState.SUPERSEDED
        inside = ids_in_buckets(lambda b: b < 90, 1)[0]
        assert APIClient().get(LATEST, HTTP_X_INSTALL_ID=inside).json()["version"] == 3

    def test_one_rollout_at_a_time_and_only_of_a_published_version_not_in_service(self, staff):
        from config.domain_errors import Conflict, Invalid, NotFound

        published(1, in_service=True)
        published(2)
        published(3)
        with pytest.raises(Conflict):
            rollout_start(version=1, percent=10)
        with pytest.raises(NotFound):
            rollout_start(version=9, percent=10)
        with pytest.raises(Invalid):
            rollout_start(version=2, percent=0)
        rollout_start(version=2, percent=10)
        with pytest.raises(Conflict):
            rollout_start(version=3, percent=10)

    def test_the_bucket_is_stable_and_spread(self):
        assert device_bucket("abc") == device_bucket("abc")
        buckets = [device_bucket(f"device-{i}") for i in range(2000)]
        assert all(0 <= b < 100 for b in buckets)
        assert 150 <= sum(b < 10 for b in buckets) <= 250  # about 10 % under 10


@pytest.mark.django_db
class TestRolloutAdmin:
    def test_staff_start_widen_and_roll_back_after_confirming(self, admin_client, admin_user):
        published(1, in_service=True)
        v2 = published(2)
        page = admin_client.get(f"/admin/training/modelversion/{v2.pk}/change/").content.decode()
        assert "Start a staged rollout" in page
        url = f"/admin/training/modelversion/{v2.pk}/rollout/"
        confirm = admin_client.get(url, {"action": "start", "percent": "10"}).content.decode()
        assert "Start a staged rollout of v2 to 10 % of devices?" in confirm and "keep v1" in confirm
        assert not Rollout.objects.exists()  # nothing happens before the confirmation
        assert admin_client.post(url, {"action": "start", "percent": "10"}).status_code == 302
        assert Rollout.objects.get().percent == 10
        admin_client.post(url, {"action": "percent", "percent": "50"})
        page = admin_client.get(f"/admin/training/modelversion/{v2.pk}/change/").content.decode()
        assert "50 % of devices" in page and "widen" in page and admin_user.username in page
        admin_client.post(url, {"action": "rollback"})
        assert Rollout.objects.get().state == RolloutState.ROLLED_BACK

    def test_staff_halt_a_rollout_and_complete_another_from_the_admin(self, admin_client):
        published(1, in_service=True)
        v2 = published(2)
        url = f"/admin/training/modelversion/{v2.pk}/rollout/"
        admin_client.post(url, {"action": "start", "percent": "10"})
        assert "Halt the rollout of v2?" in admin_client.get(url, {"action": "halt"}).content.decode()
        assert Rollout.objects.get().state != RolloutState.HALTED  # asking is not doing
        admin_client.post(url, {"action": "halt"})
        assert Rollout.objects.get().state == RolloutState.HALTED
        assert APIClient().get("/api/v1/models/latest/", HTTP_X_INSTALL_ID="any-phone").json()["version"] == 1
        admin_client.post(url, {"action": "rollback"})  # a halted rollout is still open: end it to start another
        v3 = published(3)
        url = f"/admin/training/modelversion/{v3.pk}/rollout/"
        admin_client.post(url, {"action": "start", "percent": "20"})
        admin_client.post(url, {"action": "complete"})
        assert Rollout.objects.get(model_version=v3).state == RolloutState.COMPLETE
        assert APIClient().get("/api/v1/models/latest/").json()["version"] == 3

    def test_a_bad_percentage_changes_nothing(self, admin_client):
        published(1, in_service=True)
        v2 = published(2)
        response = admin_client.post(f"/admin/training/modelversion/{v2.pk}/rollout/", {"action": "start",
                                                                                         "percent": "150"})
        assert response.status_code == 302 and not Rollout.objects.exists()

    def test_staff_without_the_change_permission_cannot(self, client):
        published(1, in_service=True)
        v2 = published(2)
        reviewer = make_reviewer()
        client.force_login(reviewer)
        response = client.post(f"/admin/training/modelversion/{v2.pk}/rollout/", {"action": "start", "percent": "10"})
        assert response.status_code == 403 and not Rollout.objects.exists()


def phone_upload(client, reviewer_client, *, label: str, predicted: str, version: int, approve_as: str | None = None):
    response = upload(client, label=label, predicted_label=predicted, model_version=version)
    assert response.status_code == 201, response.content
    photo_id = response.json()["id"]
    body = {"decision": "approve"}
    if approve_as:
        body["label"] = approve_as
    review = reviewer_client.post(f"/api/v1/photos/{photo_id}/review/", body, format="json")
    assert review.status_code == 200, review.content
    return photo_id


@pytest.mark.django_db
class TestFieldAccuracy:
    def _photos(self):
        published(1, in_service=True)
        for slug in ("cat", "dog"):
            make_label(slug)
        phone, reviewer = client_for(make_volunteer().user), client_for(make_reviewer())
        phone_upload(phone, reviewer, label="cat", predicted="cat", version=1)
        phone_upload(phone, reviewer, label="cat", predicted="cat", version=1)
        phone_upload(phone, reviewer, label="cat", predicted="dog", version=1)
        phone_upload(phone, reviewer, label="dog", predicted="dog", version=1)
        phone_upload(phone, reviewer, label="dog", predicted="cat", version=2)  # another version's prediction
        phone_upload(phone, reviewer, label="dog", predicted="", version=1)  # the phone did not classify
        # Filed as cat (as the phone said) but the reviewer approved it as dog: the phone was wrong.
        phone_upload(phone, reviewer, label="cat", predicted="cat", version=1, approve_as="dog")
        upload(phone, label="cat", predicted_label="cat", model_version=1)  # pending: not counted

    def test_staff_see_how_often_the_phone_was_right_per_label(self, admin_user, django_assert_num_queries):
        self._photos()
        with django_assert_num_queries(1):
            field = selectors.model_version_field_accuracy(version=1)
        assert (field["samples"], field["matched"]) == (5, 3)
        response = client_for(admin_user).get("/api/v1/models/1/field-accuracy/")
        assert response.status_code == 200
        body = response.json()
        assert body["version"] == 1 and body["samples"] == 5 and body["matched"] == 3
        assert body["accuracy"] == pytest.approx(0.6)
        assert body["per_label"] == [
            {"label": "cat", "samples": 3, "matched": 2, "accuracy": pytest.approx(2 / 3)},
            {"label": "dog", "samples": 2, "matched": 1, "accuracy": 0.5},
        ]

    def test_it_is_for_staff_only(self, db):
        published(1, in_service=True)
        assert APIClient().get("/api/v1/models/1/field-accuracy/").status_code == 401
        volunteer = client_for(make_volunteer().user)
        response = volunteer.get("/api/v1/models/1/field-accuracy/")
        assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"

    def test_an_unknown_version_is_404_and_a_version_without_samples_says_so(self, admin_user, admin_client):
        v1 = published(1, in_service=True)
        assert client_for(admin_user).get("/api/v1/models/7/field-accuracy/").status_code == 404
        body = client_for(admin_user).get("/api/v1/models/1/field-accuracy/").json()
        assert body["samples"] == 0 and body["accuracy"] is None and body["per_label"] == []
        page = admin_client.get(f"/admin/training/modelversion/{v1.pk}/change/").content.decode()
        assert "No approved photo was uploaded with this version" in page

    def test_the_model_version_page_shows_it(self, admin_client):
        self._photos()
        v1 = ModelVersion.objects.get(version=1)
        page = admin_client.get(f"/admin/training/modelversion/{v1.pk}/change/").content.decode()
        assert "Field accuracy" in page and "66.7%" in page and "60.0%" in page


def _salt_with(**env) -> str:
    """TRAINING_ROLLOUT_SALT as a fresh process with this environment reads it from config/settings.py."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "TRAINING_ROLLOUT_SALT")}
    out = subprocess.run([sys.executable, "-c", "import config.settings as s; print(s.TRAINING_ROLLOUT_SALT)"],
                         env={**base, "DEBUG": "true", **env}, cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


class TestTheRolloutSaltIsSecret:
    """Issue 20: with the published default salt a client picked, offline, an install id inside a rollout."""

    def test_the_default_is_per_installation_and_secret(self):
        first, second = _salt_with(SECRET_KEY="k" * 50), _salt_with(SECRET_KEY="other-" * 10)
        assert first != second and len(first) == 64
        assert "crowdlens-rollout" not in (first, second) and "k" * 50 not in first
        assert _salt_with(SECRET_KEY="k" * 50) == first  # every host of one installation agrees
        assert _salt_with(SECRET_KEY="k" * 50, TRAINING_ROLLOUT_SALT="pinned") == "pinned"

    @pytest.mark.django_db
    def test_ids_picked_offline_with_the_published_salt_do_not_get_the_rollout(self, staff, settings):
        published(1, in_service=True)
        published(2)
        rollout_start(version=2, percent=10, user=staff)
        real_salt = settings.TRAINING_ROLLOUT_SALT
        settings.TRAINING_ROLLOUT_SALT = "crowdlens-rollout"  # what an attacker computes with
        picked = ids_in_buckets(lambda b: b < 10, count=40)
        settings.TRAINING_ROLLOUT_SALT = real_salt
        got_it = [i for i in picked if APIClient().get(LATEST, HTTP_X_INSTALL_ID=i).json()["version"] == 2]
        assert len(got_it) < 15, got_it  # about 4 of 40 by chance; all 40 with a known salt


@pytest.mark.django_db
class TestHaltedVersionsByNumber:
    """Issue 20: a halted rollout's version stays out of phones' hands, also when asked for by number."""

    @pytest.fixture
    def halted(self, staff, settings, tmp_path):
        from collector import storage

        settings.MEDIA_ROOT = str(tmp_path)
        for number in (1, 2):
            version = published(number, in_service=number == 1)
            for model_file in version.files.all():
                storage.save(model_file.model_key, b"model-bytes-" + str(number).encode())
        rollout_start(version=2, percent=10, user=staff)
        rollout_halt(user=staff)

    def answers(self, client) -> list[int]:
        return [client.get(path).status_code for path in
                ("/api/v1/models/2/", "/api/v1/models/2/int8/download/")]

    def test_anyone_else_gets_404_for_the_halted_version(self, halted):
        assert self.answers(APIClient()) == [404, 404]
        assert self.answers(client_for(make_volunteer("curious").user)) == [404, 404]
        assert APIClient().get("/api/v1/models/1/int8/download/").status_code == 200  # the version in service

    def test_staff_still_get_it_with_their_token_or_session(self, halted, staff):
        assert self.answers(client_for(staff)) == [200, 200]
        session = APIClient()
        session.force_login(staff)
        assert self.answers(session) == [200, 200]

    def test_resumed_it_is_anyones_again_and_rolled_back_staffs_only(self, halted, staff):
        rollout_set_percent(percent=10, user=staff)
        assert self.answers(APIClient()) == [200, 200]
        rollout_rollback(user=staff)
        assert self.answers(APIClient()) == [404, 404]
