"""The model helps the reviewer: the scheduler's photos_predict job runs the model in service (LiteRT, a real
exported file) on pending photos' training derivatives; the queue shows the guesses, can put "model disagrees"
first, and approves the photos where the model agrees at >= p only after the reviewer confirms a preview. The
same job stores the prediction at upload the stumped bonus goes by (tests/challenges/test_stumped.py)."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from collector.models import Photo, PhotoPrediction, PhotoReview, PhotoStatus
from collector.services import photo_review
from tests.collector.test_admin_review import group_reviewer, logged_in
from tests.training.conftest import CLASSES, publish

pytestmark = pytest.mark.django_db
QUEUE = "/admin/collector/photo/review/"


@pytest.fixture
def queue(photos, classes_result, tiny_training):
    """The model in service, and pending photos: six labelled right, three sent with a wrong label."""
    version = publish(classes_result)
    right = [photos.add(slug, 2, approve=False) for slug in CLASSES]
    right = [pk for pair in right for pk in pair]
    photos.seed += 100
    wrong = photos.add("green-bar", 3, approve=False)  # green bars (the tiny model's surest class)...
    Photo.objects.filter(pk__in=wrong).update(label=Photo.objects.get(pk=right[-1]).label)  # ...sent as blue-square
    return {"version": version, "right": right, "wrong": wrong}


def test_the_job_stores_each_pending_photos_top_guesses_with_the_model_version(queue, capsys):
    call_command("photos_predict")
    assert "predicted 9 photo(s): 9 pending" in capsys.readouterr().out
    guesses = {g.photo_id: g for g in PhotoPrediction.objects.filter(for_review=True).select_related("photo__label")}
    assert set(guesses) == set(queue["right"]) | set(queue["wrong"])
    assert {g.model_version for g in guesses.values()} == {queue["version"].version}
    for guess in guesses.values():
        assert len(guess.top) == 3 and guess.top[0][0] == guess.label and 0 < guess.confidence <= 1
        assert abs(sum(p for _, p in guess.top) - 1) < 0.02, "probabilities of three labels"
    agreeing = sum(g.agrees for g in guesses.values() if g.photo_id in queue["right"])
    assert agreeing >= 5, "the model knows these classes"
    caught = [guesses[pk] for pk in queue["wrong"] if guesses[pk].label == "green-bar"]
    assert len(caught) >= 2 and not any(g.agrees for g in caught), (
        "the model sees green bars, not blue squares", [(g.photo_id, g.photo.label.slug, g.top) for g in guesses.values()],
        queue)
    call_command("photos_predict")
    assert "Nothing to predict" in capsys.readouterr().out, "a photo is guessed once per model version"


def test_the_queue_shows_guesses_puts_disagreement_first_and_approves_only_what_the_reviewer_confirms(queue, settings):
    settings.REVIEW_AGREE_THRESHOLDS = [0.5, 0.9]  # a tiny model trained in seconds is rarely sure
    call_command("photos_predict")
    reviewer = group_reviewer("rita")
    client = logged_in(reviewer)
    page = client.get(QUEUE + "?order=model_disagrees").content.decode()
    cards = [int(pk) for pk in re.findall(r'<article class="review-card" id="photo-(\d+)"', page)]
    disagreeing = {g.photo_id for g in PhotoPrediction.objects.filter(for_review=True).select_related("photo__label")
                   if not g.agrees}
    assert len(disagreeing) >= 2
    assert set(cards[:len(disagreeing)]) == disagreeing, "the photos the model disagrees with come first"
    assert "(model disagrees)" in page and f"Model v{queue['version'].version} says" in page
    # A photo decided one by one where the model agreed gives the threshold its measured error rate.
    agreeing = sorted((g for g in PhotoPrediction.objects.filter(for_review=True).select_related("photo__label")
                       if g.agrees and g.confidence >= 0.5), key=lambda g: g.photo_id)
    assert len(agreeing) >= 3
    photo_review(photo_id=agreeing[0].photo_id, reviewer=group_reviewer("sam"), decision="reject",
                 reason="blurry")
    expected = {g.photo_id for g in agreeing[1:]}
    page = client.get(QUEUE + "?agree_at=0.5").content.decode()
    shown = {int(i) for i in re.findall(r'<input type="hidden" name="ids" value="(\d+)">', page)}
    assert shown == expected
    assert f"<strong>{len(expected)}</strong> photo" in page
    assert "<strong>100.0%</strong> (1 of 1 such photos" in page, "p's measured error rate"
    assert Photo.objects.filter(pk__in=expected, status=PhotoStatus.PENDING).count() == len(expected), \
        "a preview approves nothing"
    response = client.post(QUEUE, {"decision": "approve", "agree_at": "0.5",
                                   "ids": [str(i) for i in sorted(expected | disagreeing)]},
                           HTTP_ACCEPT="application/json")
    body = response.json()
    assert response.status_code == 200, body
    assert set(Photo.objects.filter(status=PhotoStatus.APPROVED).values_list("pk", flat=True)) >= expected
    assert set(Photo.objects.filter(pk__in=disagreeing).values_list("status", flat=True)) == {PhotoStatus.PENDING}, \
        "never one the model disputes, even if its id is sent"
    assert all(r.note.startswith("batch: the model agreed") for r in PhotoReview.objects.filter(photo_id__in=expected))


def test_a_new_model_guesses_the_pending_photos_again_and_the_prediction_at_upload_stays(
        queue, classes_result, capsys):
    call_command("photos_predict")
    first, everyone = queue["version"].version, set(queue["right"]) | set(queue["wrong"])
    assert {p.photo_id for p in PhotoPrediction.objects.filter(at_upload=True, model_version=first)} == everyone, \
        "uploaded while it was in service: its answer is the one the stumped bonus goes by"
    decided = queue["right"][0]
    photo_review(photo_id=decided, reviewer=group_reviewer("sam"), decision="approve")
    newer = publish(classes_result)
    capsys.readouterr()

    call_command("photos_predict")
    assert "predicted 8 photo(s): 8 pending" in capsys.readouterr().out, "the pending ones, not the decided one"
    review = dict(PhotoPrediction.objects.filter(for_review=True).values_list("photo_id", "model_version"))
    assert review == {pk: first if pk == decided else newer.version for pk in everyone}, \
        "the queue shows the newer model's guesses; a decided photo keeps the guess it was decided with"
    at_upload = dict(PhotoPrediction.objects.filter(at_upload=True).values_list("photo_id", "model_version"))
    assert at_upload == {pk: first for pk in everyone}, "a later model never changes what the photo stumped"
    assert PhotoPrediction.objects.count() == 9 + 8
    call_command("photos_predict")
    assert "Nothing to predict" in capsys.readouterr().out
