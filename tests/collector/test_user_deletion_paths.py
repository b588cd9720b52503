"""However a volunteer's user is deleted, their photos leave datasets and storage."""

import pytest
from django.contrib.auth import get_user_model

from collector import selectors
from collector.models import Photo, PhotoStatus
from tests.conftest import stored_files
from tests.factories import make_photo, make_volunteer


@pytest.mark.django_db(transaction=True)
class TestUserDeletedOutsideTheApi:
    def test_it_withdraws_photos_and_deletes_files_when_the_user_row_is_deleted(self, settings):
        volunteer = make_volunteer()
        kept = make_photo(status=PhotoStatus.APPROVED)
        photo = make_photo(volunteer=volunteer, status=PhotoStatus.APPROVED)
        assert any(photo.training_key in f for f in stored_files(settings.MEDIA_ROOT))

        get_user_model().objects.get(pk=volunteer.user_id).delete()  # as Django's user admin does

        photo.refresh_from_db()
        assert photo.status == PhotoStatus.WITHDRAWN
        assert photo.volunteer_id is None and photo.training_key == ""
        assert list(selectors.photos_approved()) == [Photo.objects.get(pk=kept.pk)]
        remaining = stored_files(settings.MEDIA_ROOT)
        assert len(remaining) == 3  # only the other volunteer's original, training copy and thumbnail
        assert sorted(remaining) == sorted(kept.storage_keys)


@pytest.mark.django_db
class TestNearDuplicateHashes:
    def test_it_does_not_flag_two_different_featureless_photos(self):
        from tests.factories import image_bytes

        volunteer = make_volunteer()
        first = make_photo(volunteer=volunteer, image=image_bytes(color=(200, 200, 200), seed=1, size=(64, 64)))
        flat_a = make_photo(volunteer=volunteer, image=_flat((10, 10, 10)))
        flat_b = make_photo(volunteer=volunteer, image=_flat((240, 240, 240)))
        assert first.near_duplicate_of_id is None
        assert flat_b.near_duplicate_of_id is None and flat_a.near_duplicate_of_id is None

    def test_it_flags_a_recompressed_copy_of_a_textured_photo(self):
        import io

        from PIL import Image

        from tests.factories import image_bytes

        original_bytes = image_bytes(size=(800, 600), seed=42)
        original = make_photo(image=original_bytes)
        copy = io.BytesIO()
        Image.open(io.BytesIO(original_bytes)).resize((400, 300)).save(copy, format="JPEG", quality=60)
        duplicate = make_photo(image=copy.getvalue())
        assert duplicate.near_duplicate_of_id == original.pk
        other = make_photo(image=image_bytes(size=(800, 600), seed=43))
        assert other.near_duplicate_of_id is None


def _flat(color):
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (300, 200), color).save(out, format="JPEG")
    return out.getvalue()
