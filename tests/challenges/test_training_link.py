"""challenges -> training.selectors with the real thing: a real tiny training run, then the daily challenge job.

No stand-in for training here: photos go through collector, the nightly job's service trains, evaluates,
publishes and caches embeddings, and `challenges_rotate` reads what that run recorded. (The stub tests in
test_challenges.py / test_votes.py keep only what a real run cannot produce: a selector that raises.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from io import StringIO

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from challenges import services
from challenges.models import Challenge, PhotoNovelty, PointEntry, PointReason
from collector import services as collector_services
from tests.challenges.helpers import points_of
from tests.factories import make_label, make_reviewer, make_volunteer
from tests.training.images import Look, class_photo
from tests.training.conftest import tiny_training  # noqa: F401 (the fixture: the tiny training settings)
from training import selectors as training_selectors
from training.services.datasets import split_for
from training.services.execute import training_run_execute
from training.models import RunOutcome, RunStatus
from training.services.runs import training_run_claim

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


# Labels of alike photos, each with its own object and background, are what a randomly initialised 32 px
# backbone (no pretrained weights here) tells apart reliably, and what lets it place one unlike photo clearly
# farthest from its label's centre. (tests.training.conftest's classes vary the background and the position far
# more: measured, a tiny run then confused labels on some seeds.)
APPLE = Look("disc", (220, 40, 40), background=(228, 228, 228))


def apple_photo(seed: int | None = None, *, background=APPLE.background, nudge: int = 0) -> bytes:
    """A red apple on a pale table (``seed`` None: the plainest one; ``nudge``: a near-duplicate of it)."""
    return class_photo(Look(APPLE.shape, APPLE.colour, background), seed, nudge=nudge)


LOOKS = {
    "apple": apple_photo,
    "banana": lambda seed: class_photo(Look("bar", (235, 200, 40), background=(45, 45, 60)), seed),
    "cherry": lambda seed: class_photo(Look("square", (40, 70, 220), background=(200, 170, 120)), seed),
}


def split_of(data: bytes) -> str:
    """The split the run will put this upload in (a hash of its bytes, as collector stores them)."""
    return split_for(hashlib.sha256(data).hexdigest())


def in_split(make, split: str, start: int = 1) -> tuple[bytes, int]:
    """The first ``make(i)`` (i = start, start + 1, ...) that lands in ``split``, and the next i to try."""
    for i in range(start, start + 10_000):
        data = make(i)
        if split_of(data) == split:
            return data, i + 1
    raise AssertionError(f"no variant landed in {split}")


class Uploads:
    """Photos through collector's services: uploaded by volunteers, approved by a reviewer."""

    def __init__(self):
        self.reviewer = make_reviewer()
        self.seed = 1

    def approved(self, slug: str, data: bytes, volunteer=None):
        volunteer = volunteer or make_volunteer()
        photo = collector_services.photo_create(
            user=volunteer.user, image_file=SimpleUploadedFile("p.jpg", data), label_slug=slug).photo
        collector_services.photo_review(photo_id=photo.pk, reviewer=self.reviewer, decision="approve")
        return photo

    def label(self, slug: str, *, train: int, val: int = 2, test: int = 2, test_look=None) -> list:
        """``train`` / ``val`` / ``test`` approved photos that land in those splits; ``test_look``: test photos
        drawn by another label's look instead of their own."""
        make_label(slug)
        photos = []
        for split, n in (("train", train), ("val", val), ("test", test)):
            look = test_look if split == "test" and test_look else LOOKS[slug]
            for _ in range(n):
                data, self.seed = in_split(look, split, self.seed)
                photos.append(self.approved(slug, data))
        return photos


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_real_training_run_chooses_the_challenge_and_scores_novelty(tiny_training):  # noqa: F811
    # float32 only: a randomly initialised network quantizes poorly (see tiny_training), and the recall read
    # here should be the one of the model that learnt these classes.
    tiny_training.TRAINING_VARIANTS = ("float32",)
    tiny_training.TRAINING_DEFAULT_VARIANT = "float32"
    # apple has 17 photos, banana 14, cherry 19 (below): banana is one short of being scored for novelty.
    tiny_training.NOVELTY_MIN_PHOTOS = 15
    uploads = Uploads()
    uploads.label("apple", train=10)
    uploads.label("banana", train=10)
    # Deliberately hard: cherry learns from blue squares, but its test photos look exactly like apples,
    # so the model can only answer "apple" for them. It also has the most photos and the last slug: the
    # targets rule (fewest photos, then alphabetical) would never pick it; only recall can.
    uploads.label("cherry", train=14, test=3, test_look=apple_photo)
    # For novelty, three more approved apples from their own volunteers, all in the training split so that
    # the test split (and apple's recall) stays as above: the plainest apple, a near-duplicate of it, and an
    # apple on the lawn instead of the table (slide 20's "objects in non-obvious settings").
    plain_owner, twin_owner, odd_owner = make_volunteer(), make_volunteer(), make_volunteer()
    plain_bytes, after = in_split(lambda i: apple_photo(nudge=i), "train")
    plain = uploads.approved("apple", plain_bytes, plain_owner)
    twin = uploads.approved("apple", in_split(lambda i: apple_photo(nudge=i), "train", after)[0], twin_owner)
    odd = uploads.approved("apple", in_split(lambda i: apple_photo(background=(30, 110, 40), nudge=i), "train")[0],
                           odd_owner)

    # --- the nightly job's service (what `manage.py train --trigger scheduler` runs): claim, run to the end
    run = training_run_execute(run=training_run_claim(trigger="scheduler"))
    assert run.status == RunStatus.SUCCEEDED, run.error + run.log
    assert run.outcome == RunOutcome.PUBLISHED and "embed" in run.phase_seconds, run.decisions
    per_class = run.metrics[settings.TRAINING_DEFAULT_VARIANT]["per_class"]
    recall = {slug: float(per_class[slug]["recall"]) for slug in run.labels}
    assert set(recall) == {"apple", "banana", "cherry"}
    assert training_selectors.latest_recall_by_label() == recall  # what challenges read is what the run recorded

    # --- the daily job (`challenges_rotate`): today's challenge, then novelty bonuses ---------------
    out = StringIO()
    call_command("challenges_rotate", stdout=out)
    challenge = Challenge.objects.get()
    lowest = min(recall.values())
    assert recall["cherry"] == lowest < min(recall["apple"], recall["banana"]), recall
    assert challenge.label.slug == "cherry"
    assert challenge.selection_note == f"lowest recall in the latest training run ({lowest:.2f})"
    # A label created after the run is one the model does not know: recall 0, chosen next (cherry just had its day).
    make_label("damson")
    tomorrow = services.challenge_label_choose(day=challenge.date + dt.timedelta(days=1))
    assert tomorrow.label.slug == "damson" and tomorrow.reason == "lowest recall in the latest training run (0.00)"

    # Real embeddings: one vector per photo of the run, the near-duplicate next to its original, the odd one not.
    ids = [row["id"] for row in run.dataset_version.manifest]
    assert {plain.pk, twin.pk, odd.pk} <= set(ids)
    vectors = training_selectors.photo_embeddings(ids)
    assert set(vectors) == set(ids)
    assert {v.shape for v in vectors.values()} == {vectors[plain.pk].shape} and vectors[plain.pk].ndim == 1
    assert cosine(vectors[plain.pk], vectors[twin.pk]) > 0.99 > cosine(vectors[plain.pk], vectors[odd.pk])

    # docs/challenges.md's rule: percentile of the distance to the label's centre; bonus from NOVELTY_PERCENTILE
    # up, POINTS_NOVELTY_MAX for the farthest photo.
    assert "Novelty: 2 labels" in out.getvalue()
    assert not PhotoNovelty.objects.filter(label__slug="banana").exists()  # 14 < NOVELTY_MIN_PHOTOS: it waits
    apples = {row["id"] for row in run.dataset_version.manifest if row["label"] == "apple"}
    novelty = {n.photo_id: n for n in PhotoNovelty.objects.filter(label__slug="apple")}
    assert set(novelty) == apples and {n.compared_with for n in novelty.values()} == {len(apples)}
    assert novelty[odd.pk].percentile == 1.0 and novelty[odd.pk].points == settings.POINTS_NOVELTY_MAX
    assert novelty[odd.pk].distance > max(n.distance for pid, n in novelty.items() if pid != odd.pk)
    for near in (plain, twin):
        assert novelty[near.pk].percentile < settings.NOVELTY_PERCENTILE and novelty[near.pk].points == 0
    bonus = dict(PointEntry.objects.filter(reason=PointReason.NOVELTY).values_list("volunteer_id", "points"))
    assert bonus[odd_owner.user_id] == settings.POINTS_NOVELTY_MAX
    assert plain_owner.user_id not in bonus and twin_owner.user_id not in bonus
    assert points_of(odd_owner.user) == settings.POINTS_PHOTO_APPROVED + settings.POINTS_NOVELTY_MAX
    # Each photo is scored once: the next day's job awards nothing again.
    assert services.novelty_award().photos_scored == 0
    assert PointEntry.objects.filter(reason=PointReason.NOVELTY).count() == len(bonus)
