"""What to photograph next (issue 19): GET /api/v1/labels/ and the camera page rank labels by need."""

import re
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from challenges import periods
from challenges import services as challenge_services
from tests.factories import make_label, make_volunteer
from training.models import DatasetVersion, ModelVersion, VersionStatus

pytestmark = pytest.mark.django_db

FLOWERS = ["daisy", "rose", "tulip"]


def _model_in_service(*, recall: dict, confusion: list[list[int]]) -> ModelVersion:
    """A published version whose own evaluation is these figures (no file needed: nothing downloads it)."""
    dataset = DatasetVersion.objects.create(fingerprint=uuid.uuid4().hex, cutoff=timezone.now(), labels=FLOWERS)
    per_class = {slug: {"precision": 1.0, "recall": recall[slug], "support": sum(confusion[i])}
                 for i, slug in enumerate(FLOWERS)}
    return ModelVersion.objects.create(
        version=1, status=VersionStatus.PUBLISHED, in_service=True, dataset_version=dataset, strategy="fine_tune",
        labels=FLOWERS, published_at=timezone.now(),
        metrics={"int8": {"accuracy": 0.7, "per_class": per_class, "confusion": confusion}})


class TestLabelsByNeed:
    def test_lowest_recall_first_and_the_confusion_said_in_words(self):
        for slug in FLOWERS:
            make_label(slug)
        # Test photos: tulips taken for roses 6 times in 10; daisies once for a tulip; roses all right.
        _model_in_service(recall={"daisy": 0.9, "rose": 1.0, "tulip": 0.4},
                          confusion=[[9, 0, 1], [0, 10, 0], [0, 6, 4]])
        rows = APIClient().get("/api/v1/labels/").json()
        assert [row["slug"] for row in rows] == ["tulip", "daisy", "rose"]
        assert [row["need_rank"] for row in rows] == [1, 2, 3]
        tulip, daisy, rose = rows
        assert (tulip["recall"], tulip["confused_with"]) == (0.4, "rose")
        assert tulip["hint"] == "The model mixes up Tulip and Rose: a tulip that looks like a rose helps most."
        assert daisy["confused_with"] == "tulip"
        assert rose["confused_with"] is None and rose["hint"] == "The model recognises 100 % of these."

    def test_without_a_model_the_targets_decide(self, settings):
        settings.LABEL_PROTOTYPE_TARGET = 2
        make_label("mug")
        make_label("keys")
        from collector.models import PhotoStatus
        from tests.factories import make_photo

        volunteer = make_volunteer()
        for _ in range(2):
            make_photo(volunteer=volunteer, label=make_label("mug"), status=PhotoStatus.APPROVED)
        rows = APIClient().get("/api/v1/labels/").json()
        assert [(row["slug"], row["hint"]) for row in rows] == [
            ("keys", "0 of 2 photos for a first model."), ("mug", "2 of 200 photos for a good model.")]

    def test_the_camera_page_lists_them_with_todays_challenge_first(self, client):
        for slug in FLOWERS:
            make_label(slug)
        _model_in_service(recall={"daisy": 0.9, "rose": 1.0, "tulip": 0.4}, confusion=[[9, 0, 1], [0, 10, 0], [0, 6, 4]])
        challenge_services.challenge_create(day=periods.challenge_date_at(timezone.now()), label=make_label("rose"),
                                            title="Roses in odd places")
        client.force_login(make_volunteer("maria").user)
        html = client.get("/capture/").content.decode()
        section = re.search(r'<section id="next".*?</section>', html, re.S).group(0)
        items = [" ".join(re.sub(r"<[^>]+>", " ", li).split()) for li in re.findall(r"<li>(.*?)</li>", section, re.S)]
        assert items[0].startswith("Today's challenge: Rose")
        assert items[1] == "Tulip : The model mixes up Tulip and Rose: a tulip that looks like a rose helps most."
        assert items[2].startswith("Daisy")
        options = re.findall(r'<option value="([^"]*)"', html)
        assert options == ["challenge", "tulip", "daisy", "rose"]
