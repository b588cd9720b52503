import pytest

from collector import services as collector_services
from collector.models import Photo
from training.models import DatasetVersion
from training.services.datasets import dataset_version_freeze, split_for


@pytest.mark.django_db
class TestDatasetVersionFreeze:
    def test_it_freezes_exactly_the_approved_photos_with_their_split(self, photos):
        approved = photos.add("red-disc", 6)
        photos.add("red-disc", 2, approve=False)  # pending: not in the dataset
        frozen = dataset_version_freeze()
        version = frozen.version
        assert [row["id"] for row in version.manifest] == approved
        by_id = {p.pk: p for p in Photo.objects.filter(pk__in=approved)}
        for row in version.manifest:
            assert row["sha256"] == by_id[row["id"]].sha256
            assert row["label"] == "red-disc"
            assert row["split"] == split_for(row["sha256"])
        assert version.photo_count == 6
        assert set(frozen.training_keys) == set(approved)
        assert sum(version.counts[s].get("red-disc", 0) for s in ("train", "val", "test")) == 6

    def test_it_keeps_each_photo_in_its_split_as_data_grows(self, photos):
        photos.add("red-disc", 8)
        photos.add("green-bar", 8)
        before = {row["id"]: row["split"] for row in dataset_version_freeze().version.manifest}
        photos.add("red-disc", 15)
        photos.add("blue-square", 10)
        after = {row["id"]: row["split"] for row in dataset_version_freeze().version.manifest}
        assert len(after) == len(before) + 25
        assert {pid: after[pid] for pid in before} == before
        assert {"train", "val", "test"} <= set(after.values())

    def test_it_leaves_out_photos_withdrawn_since(self, photos):
        photos.add("red-disc", 6)
        first = dataset_version_freeze().version
        leaving = photos.volunteer.user
        other = type(photos)()
        other.add("red-disc", 5)
        collector_services.volunteer_delete(user=leaving)
        second = dataset_version_freeze().version
        assert second.pk != first.pk
        assert second.photo_count == 5
        assert not {r["id"] for r in first.manifest} & {r["id"] for r in second.manifest}
        first.refresh_from_db()
        assert first.photo_count == 6  # the older version stays as it was: it is what an old model was trained on

    def test_it_leaves_out_labels_with_too_few_photos_and_says_why(self, photos, settings):
        settings.TRAINING_MIN_PHOTOS_PER_LABEL = 5
        photos.add("red-disc", 5)
        photos.add("green-bar", 4)
        version = dataset_version_freeze().version
        assert version.labels == ["red-disc"]
        assert "green-bar" in version.excluded_labels
        assert "only 4 approved photos" in version.excluded_labels["green-bar"]
        assert "TRAINING_MIN_PHOTOS_PER_LABEL" in version.excluded_labels["green-bar"]
        assert {row["label"] for row in version.manifest} == {"red-disc"}

    def test_it_flags_labels_under_the_prototype_target(self, photos, settings):
        settings.TRAINING_MIN_PHOTOS_PER_LABEL = 2
        photos.add("red-disc", 3)
        version = dataset_version_freeze().version
        assert version.flagged_labels["red-disc"] == "3 approved photos, under the prototype target of 30"

    def test_it_shares_one_version_between_freezes_of_the_same_data(self, photos):
        photos.add("red-disc", 5)
        first = dataset_version_freeze()
        second = dataset_version_freeze()
        assert first.created and not second.created
        assert first.version.pk == second.version.pk
        assert DatasetVersion.objects.count() == 1


class TestSplitFor:
    def test_it_splits_roughly_by_the_configured_fractions(self, settings):
        settings.TRAINING_TEST_FRACTION, settings.TRAINING_VAL_FRACTION = 0.2, 0.1
        import hashlib

        splits = [split_for(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(4000)]
        assert 0.17 < splits.count("test") / 4000 < 0.23
        assert 0.08 < splits.count("val") / 4000 < 0.12


@pytest.mark.django_db
class TestDatasetVersionReload:
    def test_it_gives_back_exactly_an_earlier_version_while_its_photos_remain(self, photos):
        from training.services.datasets import dataset_version_reload

        photos.add("red-disc", 5)
        first = dataset_version_freeze().version
        photos.add("red-disc", 3)  # newer photos do not enter a repeat
        again = dataset_version_reload(pk=first.pk)
        assert again.version.pk == first.pk
        assert set(again.training_keys) == {row["id"] for row in first.manifest}

    def test_it_refuses_once_a_photo_was_withdrawn(self, photos):
        from training.services.datasets import DatasetUnavailable, dataset_version_reload

        photos.add("red-disc", 5)
        first = dataset_version_freeze().version
        collector_services.volunteer_delete(user=photos.volunteer.user)
        with pytest.raises(DatasetUnavailable, match="5 of its 5 photos are no longer approved"):
            dataset_version_reload(pk=first.pk)
