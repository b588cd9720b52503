"""What challenges and newsletter read from training."""

import numpy as np
import pytest
from django.db import transaction
from django.utils import timezone

from collector import services as collector_services
from tests.training.conftest import publish
from training import selectors
from training.feature_store import DbFeatureStore
from training.models import FeatureCache, RunStatus, TrainingRun


@pytest.mark.django_db
class TestLatestRecallByLabel:
    def test_it_is_none_before_any_model(self):
        assert selectors.latest_recall_by_label() is None

    @pytest.mark.slow
    def test_it_gives_the_recall_of_the_model_in_service(self, trained_result, settings):
        version = publish(trained_result)
        result, _ = trained_result
        expected = {slug: v["recall"] for slug, v in result.variants[version.phone_variant()].per_class.items()}
        assert selectors.latest_recall_by_label() == pytest.approx(expected)
        # A later held-back run re-measured the model in service on a newer split, with a new label it lacks.
        TrainingRun.objects.create(status=RunStatus.SUCCEEDED, outcome="held_back", finished_at=timezone.now(), gate={
            "service": {"version": version.version, "variant": "float32", "accuracy": 0.5,
                        "per_class": {"red-disc": {"recall": 0.25}, "yellow-star": {"recall": 0.0}}}})
        assert selectors.latest_recall_by_label() == {"red-disc": 0.25, "yellow-star": 0.0}


@pytest.mark.django_db
@pytest.mark.slow
class TestModelVersionsPublished:
    def test_it_lists_versions_published_in_the_period(self, trained_result):
        start = timezone.now()
        first = publish(trained_result)
        middle = timezone.now()
        second = publish(trained_result)
        rows = selectors.model_versions_published(since=start)
        assert [r["version"] for r in rows] == [first.version, second.version]
        assert rows[0]["new_labels"] == trained_result[0].labels and rows[1]["new_labels"] == []
        assert rows[1]["in_service"] and not rows[0]["in_service"]
        assert set(rows[0]["accuracy"]) == {"float32", "float16", "dynamic", "int8"}
        assert [r["version"] for r in selectors.model_versions_published(since=middle)] == [second.version]
        assert selectors.model_versions_published(until=start) == []


@pytest.mark.django_db
class TestPhotoEmbeddings:
    def test_it_returns_only_cached_embeddings_and_forgets_withdrawn_photos(self, photos, settings,
                                                                            django_capture_on_commit_callbacks):
        from training.ml.features import encode

        ids = photos.add("red-disc", 2)
        other = type(photos)()
        other.seed = 1000  # other bytes than the first volunteer's photos
        [kept] = other.add("red-disc", 1)
        cache_id = selectors.embedding_cache_id()
        sha = dict(__import__("collector.models", fromlist=["Photo"]).Photo.objects.values_list("id", "sha256"))
        vector = np.arange(8, dtype=np.float32)
        DbFeatureStore().put_many({sha[ids[0]]: encode(vector[None]), sha[kept]: encode(vector[None] * 2)},
                                           cache_id)
        found = selectors.photo_embeddings(ids + [kept])
        assert set(found) == {ids[0], kept}  # ids[1] was never embedded: absent, not computed
        assert np.allclose(found[ids[0]], vector) and found[ids[0]].dtype == np.float32
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                collector_services.volunteer_delete(user=photos.volunteer.user)
        assert not FeatureCache.objects.filter(sha256=sha[ids[0]]).exists()
        assert FeatureCache.objects.filter(sha256=sha[kept]).exists()
        assert set(selectors.photo_embeddings(ids + [kept])) == {kept}
