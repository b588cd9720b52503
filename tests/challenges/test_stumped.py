"""Stump the model (issue 19): the server's own prediction decides the bonus, never the phone's claim."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.template.loader import render_to_string
from django.utils import timezone

from challenges.models import PointEntry, PointReason
from collector import storage
from collector.models import Photo, PhotoPrediction
from tests.factories import client_for, make_label, make_reviewer, make_volunteer, upload
from tests.training.conftest import CLASSES, class_image, publish  # noqa: F401
from tests.training.conftest import classes_result  # noqa: F401 (session fixture)
from newsletter import selectors as newsletter_selectors
from newsletter.models import Edition
from training import ml

pytestmark = pytest.mark.django_db


def _stumped_points(photo_id: int) -> int:
    return sum(PointEntry.objects.filter(photo_id=photo_id, reason=PointReason.STUMPED).values_list("points", flat=True))


class TestStumpTheModel:
    def test_the_server_prediction_decides_and_a_forged_claim_earns_nothing(
            self, classes_result, settings, django_capture_on_commit_callbacks):  # noqa: F811
        settings.POINTS_STUMPED = 15
        version = publish(classes_result)
        for slug in CLASSES:
            make_label(slug)
        volunteer, reviewer = make_volunteer("maria"), make_reviewer()
        phone, staff = client_for(volunteer.user), client_for(reviewer)
        ids = []
        for seed in (1, 2):
            response = upload(phone, class_image("red-disc", 9000 + seed, size=96), label="red-disc",
                              predicted_label="blue-square", predicted_confidence=0.9, model_version=version.version)
            assert response.status_code == 201, response.content
            ids.append(response.json()["id"])
        honest, forged = ids

        with django_capture_on_commit_callbacks(execute=True):
            call_command("photos_predict", stdout=open("/dev/null", "w"))
        assert PhotoPrediction.objects.filter(photo_id__in=ids, model_version=version.version).count() == 2
        model_said = {p.photo_id: p.label for p in PhotoPrediction.objects.filter(at_upload=True)}
        wrong = {pid: next(s for s in sorted(CLASSES) if s != model_said[pid]) for pid in ids}

        # The reviewer's label differs from the model's answer: stumped, though the phone claimed the right label.
        staff.post(f"/api/v1/photos/{honest}/review/", {"decision": "approve", "label": wrong[honest]}, format="json")
        # The model was right; the phone's claim (another label) is ignored: no bonus.
        staff.post(f"/api/v1/photos/{forged}/review/", {"decision": "approve", "label": model_said[forged]}, format="json")
        assert _stumped_points(honest) == 15
        assert _stumped_points(forged) == 0

        # The newsletter names the week's best at it, with what the model thought.
        now = timezone.now()
        edition = Edition.objects.create(period_start=now - dt.timedelta(days=7), period_end=now + dt.timedelta(minutes=1),
                                         subject="weekly", scheduled_for=now,
                                         content=newsletter_selectors.edition_content(
                                             since=now - dt.timedelta(days=7), until=now + dt.timedelta(minutes=1),
                                             previous=None))
        text = render_to_string("newsletter/email/edition_body.txt", newsletter_selectors.edition_render_context(edition))
        assert (f"maria: 1 approved photo the model got wrong (it thought a {wrong[honest]} was a {model_said[honest]})."
                in text), text

        # Relabelled to what the model said: the bonus is taken back through the ledger.
        staff.post(f"/api/v1/photos/{honest}/review/", {"decision": "approve", "label": model_said[honest]}, format="json")
        assert _stumped_points(honest) == 0
        assert PointEntry.objects.filter(photo_id=honest, reason=PointReason.STUMPED).count() == 2  # grant, take-back

    def test_a_photo_approved_before_the_prediction_gets_its_bonus_when_it_comes(
            self, classes_result, settings, django_capture_on_commit_callbacks, tmp_path):  # noqa: F811
        settings.POINTS_STUMPED = 15
        version = publish(classes_result)
        for slug in CLASSES:
            make_label(slug)
        phone, staff = client_for(make_volunteer("jo").user), client_for(make_reviewer())
        photo_id = upload(phone, class_image("green-bar", 9100, size=96), label="green-bar").json()["id"]
        # What the server's model will say, so that the approved label is surely another one.
        model_file = version.files.get(variant=settings.TRAINING_GATE_VARIANT)
        path = tmp_path / "photo.jpg"
        with storage.open_file(Photo.objects.get(pk=photo_id).training_key) as handle, \
                storage.open_file(model_file.model_key) as model:
            path.write_bytes(handle.read())
            scores = ml.classify_image(model_content=model.read(), image_path=path,
                                       input_spec=ml.InputSpec(**model_file.input_spec))
        said = version.labels[max(range(len(scores)), key=scores.__getitem__)]
        other = next(s for s in sorted(CLASSES) if s != said)
        staff.post(f"/api/v1/photos/{photo_id}/review/", {"decision": "approve", "label": other}, format="json")
        assert _stumped_points(photo_id) == 0
        with django_capture_on_commit_callbacks(execute=True):
            call_command("photos_predict", stdout=open("/dev/null", "w"))
        assert PhotoPrediction.objects.get(photo_id=photo_id, at_upload=True).label == said
        assert _stumped_points(photo_id) == 15
        # Running the job again predicts nothing twice and grants nothing twice.
        with django_capture_on_commit_callbacks(execute=True):
            call_command("photos_predict", stdout=open("/dev/null", "w"))
        assert PhotoPrediction.objects.filter(photo_id=photo_id).count() == 1
        assert PointEntry.objects.filter(photo_id=photo_id, reason=PointReason.STUMPED).count() == 1

    def test_without_a_model_in_service_nothing_is_predicted(self):
        call_command("photos_predict", stdout=open("/dev/null", "w"))
        assert not PhotoPrediction.objects.exists()
