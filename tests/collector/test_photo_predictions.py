"""The server's own predictions, one row per photo and model version in the two roles readers go by: the
prediction at upload (the stumped bonus) and the review guess (the queue). The model itself is stood in for
here; tests/training/test_photos_predict.py and tests/challenges/test_stumped.py run the real job."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from collector import selectors
from collector.models import PhotoPrediction, PhotoStatus
from collector.services import photo_prediction_record, photo_review
from collector.signals import photo_predicted
from tests.factories import make_label, make_photo, make_reviewer

pytestmark = pytest.mark.django_db
TULIP = [("tulip", 0.8), ("daisy", 0.2)]
DAISY = [("daisy", 0.7), ("tulip", 0.3)]


@pytest.fixture
def announced():
    """The photo ids collector.signals.photo_predicted announced."""
    heard = []

    def receiver(sender, *, photo_id, **kwargs):
        heard.append(photo_id)

    photo_predicted.connect(receiver, dispatch_uid="test_photo_predictions")
    yield heard
    photo_predicted.disconnect(dispatch_uid="test_photo_predictions")


def roles(photo) -> dict[int, tuple[bool, bool]]:
    """model version -> (at_upload, for_review) of the photo's rows."""
    return {p.model_version: (p.at_upload, p.for_review) for p in PhotoPrediction.objects.filter(photo=photo)}


def test_the_version_in_service_at_upload_keeps_its_answer_and_newer_ones_take_over_the_review_guess(
        announced, django_capture_on_commit_callbacks):
    daisy = make_label("daisy")
    published = timezone.now() - dt.timedelta(hours=1)
    photo = make_photo(label=daisy)

    with django_capture_on_commit_callbacks(execute=True):
        first = photo_prediction_record(photo_id=photo.pk, model_version=3, variant="float32", top=TULIP,
                                        model_published_at=published)
    assert (first.label, first.confidence, first.top) == ("tulip", 0.8, [["tulip", 0.8], ["daisy", 0.2]])
    assert roles(photo) == {3: (True, True)} and announced == [photo.pk]
    assert selectors.photo_server_prediction(photo_id=photo.pk).model_version == 3
    assert selectors.review_guesses(photo_ids=[photo.pk])[photo.pk].model_version == 3

    # v4 was published after the upload: it guesses for the queue, but the stumped bonus stays v3's.
    with django_capture_on_commit_callbacks(execute=True):
        photo_prediction_record(photo_id=photo.pk, model_version=4, variant="float32", top=DAISY,
                                model_published_at=timezone.now())
    assert roles(photo) == {3: (True, False), 4: (False, True)}
    assert announced == [photo.pk], "only a new prediction at upload is announced"
    assert selectors.photo_server_prediction(photo_id=photo.pk).label == "tulip"
    assert selectors.review_guesses(photo_ids=[photo.pk])[photo.pk].label == "daisy"

    # v5 replaces v4's guess; v4's row has no reader left and goes.
    photo_prediction_record(photo_id=photo.pk, model_version=5, top=DAISY, model_published_at=timezone.now())
    assert roles(photo) == {3: (True, False), 5: (False, True)}
    # Rolled back to v3: its guess is the queue's again, in the row it already has.
    again = photo_prediction_record(photo_id=photo.pk, model_version=3, top=TULIP, model_published_at=published)
    assert again.pk == first.pk and roles(photo) == {3: (True, True)}
    assert photo_prediction_record(photo_id=photo.pk, model_version=3, top=TULIP, model_published_at=published) \
        is None, "stored once per version"

    # Decided: its guess stays (the queue's error rate is measured on it) and nothing replaces it.
    photo_review(photo_id=photo.pk, reviewer=make_reviewer(), decision="approve")
    assert photo_prediction_record(photo_id=photo.pk, model_version=6, top=DAISY,
                                   model_published_at=timezone.now()) is None
    assert roles(photo) == {3: (True, True)}


def test_a_decided_photo_gets_only_the_prediction_at_upload_and_an_older_photo_none():
    daisy = make_label("daisy")
    published = timezone.now() - dt.timedelta(minutes=5)
    approved = make_photo(label=daisy, status=PhotoStatus.APPROVED)
    rejected = make_photo(label=daisy, status=PhotoStatus.REJECTED)
    older = make_photo(label=daisy, status=PhotoStatus.APPROVED)
    row = photo_prediction_record(photo_id=approved.pk, model_version=3, top=TULIP, model_published_at=published)
    assert (row.at_upload, row.for_review) == (True, False), "not pending: no guess for the queue"
    assert photo_prediction_record(photo_id=rejected.pk, model_version=3, top=TULIP,
                                   model_published_at=published) is None
    assert photo_prediction_record(photo_id=older.pk, model_version=4, top=TULIP,
                                   model_published_at=timezone.now()) is None, "no model of its time judged it"
    assert photo_prediction_record(photo_id=approved.pk + 1000, model_version=3, top=TULIP,
                                   model_published_at=published) is None, "gone"


def test_the_job_takes_new_uploads_first_then_pending_photos_the_version_has_not_guessed():
    daisy = make_label("daisy")
    old_pending = make_photo(label=daisy)
    old_approved = make_photo(label=daisy, status=PhotoStatus.APPROVED)
    published = timezone.now()
    new_pending, new_approved = make_photo(label=daisy), make_photo(label=daisy, status=PhotoStatus.APPROVED)
    make_photo(label=daisy, status=PhotoStatus.REJECTED)

    def todo(limit=10):
        return [pk for pk, _ in selectors.photos_needing_prediction(model_version=7, published_at=published,
                                                                    limit=limit)]

    assert todo() == [new_pending.pk, new_approved.pk, old_pending.pk], \
        "uploads since v7 was published (the stumped bonus waits), then the other pending ones; never old decided ones"
    assert todo(limit=2) == [new_pending.pk, new_approved.pk]
    photo_prediction_record(photo_id=old_pending.pk, model_version=6, top=TULIP, model_published_at=published)
    assert todo() == [new_pending.pk, new_approved.pk, old_pending.pk], "v6's guess is not v7's"
    for photo in (new_pending, new_approved, old_pending):
        photo_prediction_record(photo_id=photo.pk, model_version=7, top=TULIP, model_published_at=published)
    assert todo() == []
    assert old_approved.pk not in todo()
