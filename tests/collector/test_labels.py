import pytest
from rest_framework.test import APIClient

from collector.models import PhotoStatus
from tests.factories import make_label, make_photo, make_volunteer


@pytest.mark.django_db
class TestLabelList:
    url = "/api/v1/labels/"

    def test_it_lists_active_labels_with_counts_and_progress(self, settings):
        settings.LABEL_PROTOTYPE_TARGET = 4
        settings.LABEL_PRODUCTION_TARGET = 10
        mug = make_label("mug", name="Mug", description="Any drinking mug")
        cup = make_label("cup", prototype_target=2, production_target=3)
        make_label("retired", active=False)
        volunteer = make_volunteer()
        for _ in range(3):
            make_photo(volunteer=volunteer, label=mug, status=PhotoStatus.APPROVED)
        make_photo(volunteer=volunteer, label=mug, status=PhotoStatus.REJECTED)
        make_photo(volunteer=volunteer, label=mug)  # pending: not counted
        for _ in range(3):
            make_photo(volunteer=volunteer, label=cup, status=PhotoStatus.APPROVED)

        response = APIClient().get(self.url)  # public: no token
        assert response.status_code == 200
        body = {row["slug"]: row for row in response.json()}
        assert set(body) == {"mug", "cup"}
        assert body["mug"] == {
            "slug": "mug", "name": "Mug", "description": "Any drinking mug", "approved_count": 3,
            "prototype_target": 4, "production_target": 10, "prototype_progress": 0.75, "production_progress": 0.3,
            # Most needed first (issue 19): under its prototype target, where cup has passed its own.
            "need_rank": 1, "recall": None, "confused_with": None, "hint": "3 of 4 photos for a first model.",
        }
        assert [row["slug"] for row in response.json()] == ["mug", "cup"]
        assert body["cup"]["approved_count"] == 3
        assert (body["cup"]["prototype_target"], body["cup"]["production_target"]) == (2, 3)
        assert body["cup"]["prototype_progress"] == 1.0 and body["cup"]["production_progress"] == 1.0
        assert cup.pk and mug.pk

    def test_it_uses_the_seed_targets_by_default(self):
        make_label("mug")
        row = APIClient().get(self.url).json()[0]
        assert (row["prototype_target"], row["production_target"]) == (30, 200)
        assert row["approved_count"] == 0 and row["prototype_progress"] == 0.0
