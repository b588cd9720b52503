"""POST /api/v1/photos/: the contract phones rely on."""

import hashlib
import io
import threading

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from PIL import Image

from collector.models import Photo
from tests.collector import samples
from tests.collector.asserts import assert_error
from tests.factories import client_for, image_bytes, make_label, make_volunteer, upload

CONTRACT_FIELDS = {"id", "status", "label", "sha256", "width", "height", "thumbnail_url", "near_duplicate_of",
                   "created_at"}


def stored_image(key: str) -> Image.Image:
    with default_storage.open(key, "rb") as handle:
        image = Image.open(io.BytesIO(handle.read()))
        image.load()
    return image


def stored_bytes(key: str) -> bytes:
    with default_storage.open(key, "rb") as handle:
        return handle.read()


@pytest.mark.django_db
class TestUploadContract:
    def test_it_answers_201_with_the_contract(self, api, label, volunteer, assert_no_orphans):
        data = image_bytes(size=(800, 600))
        response = upload(api, data, label="mug", captured_at="2026-11-20T10:11:12Z", device_model="Pixel 8",
                          app_version="1.4.2", predicted_label="cup", predicted_confidence="0.82", model_version="7")
        assert response.status_code == 201, response.content
        body = response.json()
        assert CONTRACT_FIELDS <= set(body)
        assert body["status"] == "pending" and body["label"] == "mug"
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
        assert (body["width"], body["height"]) == (800, 600)
        assert body["near_duplicate_of"] is None and body["created_at"]
        assert body["thumbnail_url"].endswith(f"/api/v1/photos/{body['id']}/thumbnail/")
        assert body["thumbnail_url"].startswith("http")

        photo = Photo.objects.get(pk=body["id"])
        assert photo.volunteer == volunteer.user and photo.label == label
        assert photo.device_model == "Pixel 8" and photo.app_version == "1.4.2"
        assert photo.predicted_label == "cup" and photo.predicted_confidence == pytest.approx(0.82)
        assert photo.model_version == 7 and photo.captured_at.isoformat().startswith("2026-11-20T10:11:12")
        assert photo.byte_size == len(data) and photo.source_format == "JPEG"
        assert stored_bytes(photo.original_key) == data, "the original is kept exactly as received"
        assert len(assert_no_orphans()) == 3

    def test_its_thumbnail_url_answers_with_the_token(self, api, label):
        body = upload(api, image_bytes(size=(800, 600)), label="mug").json()
        response = api.get(body["thumbnail_url"])
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
        thumb = Image.open(io.BytesIO(b"".join(response.streaming_content)))
        assert thumb.format == "JPEG" and max(thumb.size) == 480

    def test_its_derivatives_have_the_configured_sizes(self, api, label, settings):
        settings.PHOTO_TRAINING_SHORT_SIDE = 128
        settings.PHOTO_THUMBNAIL_SIZE = 200
        photo = Photo.objects.get(pk=upload(api, image_bytes(size=(1000, 500)), label="mug").json()["id"])
        assert stored_image(photo.training_key).size == (256, 128)
        assert stored_image(photo.thumbnail_key).size == (200, 100)

    def test_it_never_upscales_small_photos(self, api, label):
        photo = Photo.objects.get(pk=upload(api, image_bytes(size=(120, 90)), label="mug").json()["id"])
        assert stored_image(photo.training_key).size == (120, 90)
        assert stored_image(photo.thumbnail_key).size == (120, 90)

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_it_applies_each_exif_orientation(self, api, label, orientation):
        response = upload(api, samples.oriented_jpeg(orientation, (600, 400)), label="mug")
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["width"], body["height"]) == (600, 400), "width and height as displayed"
        photo = Photo.objects.get(pk=body["id"])
        for key, size in ((photo.training_key, (384, 256)), (photo.thumbnail_key, (480, 320))):
            derivative = stored_image(key)
            assert derivative.size == size
            assert not derivative.getexif(), "no orientation tag left: the pixels themselves are upright"
            colours = samples.quadrant_colours(derivative)
            for corner, expected in samples.QUADRANTS.items():
                assert samples.close_to(colours[corner], expected), (orientation, key, corner, colours[corner])

    @pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
    def test_it_applies_exif_orientation_in_other_formats(self, api, label, fmt):
        response = upload(api, samples.oriented_jpeg(6, (600, 400), fmt=fmt), label="mug", filename="x.jpg")
        assert response.status_code == 201, response.content
        assert (response.json()["width"], response.json()["height"]) == (600, 400)
        photo = Photo.objects.get(pk=response.json()["id"])
        colours = samples.quadrant_colours(stored_image(photo.training_key))
        assert all(samples.close_to(colours[c], e) for c, e in samples.QUADRANTS.items()), colours

    def test_its_derivatives_carry_no_metadata(self, api, label):
        data = samples.jpeg_with_gps()
        photo = Photo.objects.get(pk=upload(api, data, label="mug").json()["id"])
        for key in (photo.training_key, photo.thumbnail_key):
            raw = stored_bytes(key)
            image = Image.open(io.BytesIO(raw))
            assert not image.getexif(), key
            assert not image.getexif().get_ifd(0x8825), key
            assert not ({"exif", "icc_profile", "xmp", "comment", "photoshop"} & set(image.info)), (key, image.info.keys())
            assert samples.GPS_MARKER not in raw and b"Exif" not in raw and b"CrowdlensPhone" not in raw, key
        # and over HTTP, too
        thumb = b"".join(api.get(f"/api/v1/photos/{photo.pk}/thumbnail/").streaming_content)
        assert samples.GPS_MARKER not in thumb and b"Exif" not in thumb

    def test_it_generates_storage_keys(self, api, label):
        response = upload(api, image_bytes(), label="mug", filename="../../../etc/passwd%00.php")
        assert response.status_code == 201, response.content
        photo = Photo.objects.get(pk=response.json()["id"])
        prefix = photo.original_key.rsplit("/", 1)[0]
        assert photo.original_key == f"{prefix}/original.jpg"
        assert photo.training_key == f"{prefix}/train.jpg" and photo.thumbnail_key == f"{prefix}/thumb.jpg"
        assert prefix.startswith("photos/") and ".." not in prefix and "passwd" not in prefix
        assert len(prefix.rsplit("/", 1)[1]) == 32, "an unguessable random part"
        other = Photo.objects.get(pk=upload(api, image_bytes(), label="mug", filename="../../../etc/passwd%00.php").json()["id"])
        assert other.original_key != photo.original_key


@pytest.mark.django_db
class TestFormats:
    """Recognised by content: the file name and Content-Type the client claims do not matter."""

    @pytest.mark.parametrize("builder, fmt, ext", [
        (lambda: image_bytes(size=(320, 240)), "JPEG", "jpg"),
        (samples.png_bytes, "PNG", "png"),
        (samples.webp_bytes, "WEBP", "webp"),
        (samples.heic_bytes, "HEIF", "heic"),
    ])
    def test_it_accepts_allowed_formats_whatever_their_name(self, api, label, builder, fmt, ext, assert_no_orphans):
        from django.core.files.uploadedfile import SimpleUploadedFile

        image = SimpleUploadedFile("totally-a.gif", builder(), content_type="text/plain")
        response = api.post("/api/v1/photos/", {"image": image, "label": "mug"}, format="multipart")
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["width"], body["height"]) == (320, 240)
        photo = Photo.objects.get(pk=body["id"])
        assert photo.source_format == fmt and photo.original_key.endswith(f"/original.{ext}")
        assert stored_image(photo.training_key).format == "JPEG"
        assert_no_orphans()

    @pytest.mark.parametrize("orientation", [1, 3, 6, 8])
    def test_heic_derivatives_are_upright_jpeg(self, api, label, orientation):
        body = upload(api, samples.heic_bytes((600, 400), orientation), label="mug").json()
        assert (body["width"], body["height"]) == (600, 400)
        photo = Photo.objects.get(pk=body["id"])
        colours = samples.quadrant_colours(stored_image(photo.training_key))
        assert all(samples.close_to(colours[c], e) for c, e in samples.QUADRANTS.items()), colours

    @pytest.mark.parametrize("builder", [samples.gif_bytes, samples.bmp_bytes, samples.tiff_bytes,
                                         lambda: samples.PDF, lambda: samples.SVG, lambda: samples.TEXT])
    def test_it_refuses_other_formats_with_415_even_named_jpeg(self, api, label, builder, assert_no_orphans):
        from django.core.files.uploadedfile import SimpleUploadedFile

        image = SimpleUploadedFile("photo.jpg", builder(), content_type="image/jpeg")
        response = api.post("/api/v1/photos/", {"image": image, "label": "mug"}, format="multipart")
        assert_error(response, 415, "unsupported", ["image"])
        assert not Photo.objects.exists()
        assert assert_no_orphans() == []


@pytest.mark.django_db
class TestIdempotency:
    def test_a_retry_with_the_same_key_answers_200_with_the_original(self, api, label, assert_no_orphans):
        data = image_bytes()
        first = upload(api, data, label="mug", key="retry-1")
        again = upload(api, data, label="mug", key="retry-1")
        assert first.status_code == 201 and again.status_code == 200, again.content
        assert again.json() == first.json()
        assert Photo.objects.count() == 1
        assert len(assert_no_orphans()) == 3

    def test_the_same_key_with_other_bytes_answers_422(self, api, label, assert_no_orphans):
        first = upload(api, image_bytes(), label="mug", key="retry-2")
        response = upload(api, image_bytes(), label="mug", key="retry-2")
        assert_error(response, 422, "idempotency_key_reused")
        assert list(Photo.objects.values_list("id", flat=True)) == [first.json()["id"]]
        assert len(assert_no_orphans()) == 3

    def test_identical_bytes_without_a_key_return_the_existing_photo(self, api, label, assert_no_orphans):
        data = image_bytes()
        first = upload(api, data, label="mug")
        again = upload(api, data, label="mug")
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert Photo.objects.count() == 1
        assert len(assert_no_orphans()) == 3

    def test_identical_bytes_under_a_new_key_return_the_existing_photo(self, api, label):
        data = image_bytes()
        first = upload(api, data, label="mug", key="a")
        again = upload(api, data, label="mug", key="b")
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]

    def test_keys_belong_to_one_volunteer(self, api, label):
        upload(api, image_bytes(), label="mug", key="same-key")
        other = client_for(make_volunteer().user)
        response = upload(other, image_bytes(), label="mug", key="same-key")
        assert response.status_code == 201
        assert Photo.objects.count() == 2

    def test_another_volunteer_sending_the_same_bytes_gets_a_new_photo_flagged_as_duplicate(self, api, label):
        data = image_bytes()
        first = upload(api, data, label="mug").json()
        second = upload(client_for(make_volunteer().user), data, label="mug")
        assert second.status_code == 201
        assert second.json()["id"] != first["id"]
        assert second.json()["near_duplicate_of"] == first["id"]

    def test_the_same_bytes_with_another_label_answer_409_naming_the_photo_kept(self, api, label, assert_no_orphans):
        make_label("cup")
        data = image_bytes()
        first = upload(api, data, label="mug").json()

        response = upload(api, data, label="cup")

        error = assert_error(response, 409, "duplicate_other_label", fields=["label"])
        assert error["fields"]["existing_photo"] == [str(first["id"])]
        assert error["fields"]["existing_label"] == ["mug"]
        assert Photo.objects.get().label.slug == "mug", "the photo kept its label"
        assert len(assert_no_orphans()) == 3

    def test_the_same_key_and_bytes_with_another_label_answer_409(self, api, label):
        make_label("cup")
        data = image_bytes()
        first = upload(api, data, label="mug", key="k-1").json()

        error = assert_error(upload(api, data, label="cup", key="k-1"), 409, "duplicate_other_label")

        assert error["fields"]["existing_photo"] == [str(first["id"])]
        assert Photo.objects.count() == 1

    @pytest.mark.parametrize("other", ["unicorn", "retired"])
    def test_the_same_bytes_with_an_unknown_label_are_refused_as_any_upload(self, api, label, other, assert_no_orphans):
        make_label("retired", active=False)
        data = image_bytes()
        upload(api, data, label="mug")
        fresh = upload(api, image_bytes(), label=other)

        again = upload(api, data, label=other)

        assert_error(fresh, 422, "unknown_label", fields=["label"])
        assert_error(again, 422, "unknown_label", fields=["label"])
        assert Photo.objects.count() == 1 and len(assert_no_orphans()) == 3

    def test_a_retry_after_a_reviewer_relabelled_the_photo_is_still_a_retry(self, api, label):
        from collector.services import photo_relabel
        from tests.factories import make_reviewer

        make_label("cup")
        data = image_bytes()
        first = upload(api, data, label="mug").json()
        photo_relabel(photo_id=first["id"], reviewer=make_reviewer(), label_slug="cup")

        again = upload(api, data, label="mug")

        assert again.status_code == 200, again.content
        assert again.json()["id"] == first["id"] and again.json()["label"] == "cup"

    @pytest.mark.parametrize("key", ["x" * 129, "has space", "ünïcode", ""])
    def test_it_refuses_a_malformed_key(self, api, label, key, assert_no_orphans):
        response = api.post("/api/v1/photos/", {"image": io.BytesIO(image_bytes()), "label": "mug"},
                            format="multipart", HTTP_IDEMPOTENCY_KEY=key)
        assert_error(response, 400, fields=["Idempotency-Key"])
        assert not Photo.objects.exists() and assert_no_orphans() == []


@pytest.mark.django_db
class TestNearDuplicates:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_a_reencoded_resized_copy_is_flagged_with_a_link_to_the_original(self, api, label, seed):
        original = samples.scene(seed, (800, 600))
        first = upload(api, samples.encode(original, "JPEG", quality=92), label="mug").json()
        upload(api, samples.encode(samples.scene(seed + 50), "JPEG"), label="mug")  # another photo in between
        copy = upload(client_for(make_volunteer().user), samples.encode(original.resize((640, 480)), "JPEG", quality=60),
                      label="mug")
        assert copy.status_code == 201
        assert copy.json()["near_duplicate_of"] == first["id"]
        assert Photo.objects.get(pk=copy.json()["id"]).near_duplicate_of_id == first["id"]

    def test_a_12_mp_copy_of_a_small_photo_is_flagged(self, api, label):
        original = samples.scene(9, (800, 600))
        first = upload(api, samples.encode(original, "JPEG", quality=92), label="mug").json()
        big = upload(api, samples.encode(original.resize((4032, 3024)), "JPEG", quality=85), label="mug").json()
        assert big["near_duplicate_of"] == first["id"]

    def test_different_photos_are_not_flagged(self, api, label):
        upload(api, samples.encode(samples.scene(1), "JPEG"), label="mug")
        for seed in (2, 3, 4):
            response = upload(api, samples.encode(samples.scene(seed), "JPEG"), label="mug")
            assert response.json()["near_duplicate_of"] is None


def _race(requests_fn, parties: int):
    """Run the requests in threads that all pass the 'already exists?' check before any of them inserts."""
    from collector.lib import images as images_lib

    barrier = threading.Barrier(parties, timeout=20)
    real = images_lib.process_upload

    def held(*args, **kwargs):
        result = real(*args, **kwargs)
        barrier.wait()
        return result

    results = [None] * parties

    def worker(i):
        try:
            results[i] = requests_fn(i)
        finally:
            connection.close()

    from unittest import mock

    with mock.patch.object(images_lib, "process_upload", held):
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(parties)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    return results


@pytest.mark.django_db(transaction=True)
class TestRacingUploads:
    """Concurrent identical uploads make one photo; the loser answers 200 with it and takes its files back."""

    @pytest.fixture(autouse=True)
    def _real_database_only(self):
        if connection.vendor != "postgresql":
            pytest.skip("row-level concurrency needs PostgreSQL (SQLite serialises writers)")

    @pytest.mark.parametrize("with_key", [True, False])
    def test_two_racing_requests_create_one_photo(self, label, volunteer, with_key, assert_no_orphans):
        data = image_bytes()
        token_client = client_for(volunteer.user)
        headers = {"key": "race-key"} if with_key else {}
        results = _race(lambda i: upload(token_client, data, label="mug", **headers), 2)
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 201], [(r.status_code, r.content) for r in results]
        assert results[0].json()["id"] == results[1].json()["id"]
        assert Photo.objects.count() == 1
        assert len(assert_no_orphans()) == 3, "the loser's files were removed"


@pytest.mark.django_db(transaction=True)
class TestLabelDeletedDuringTheUpload:
    def test_it_answers_the_unknown_label_error_and_keeps_no_file(self, api, label, assert_no_orphans):
        """An admin deletes a label that has no photos yet while a phone's upload of it is being processed."""
        from collector.models import Label
        from collector.signals import photo_upload_validating

        def delete_label(**kwargs):
            Label.objects.filter(pk=kwargs["label"].pk).delete()

        photo_upload_validating.connect(delete_label, dispatch_uid="test-delete-label")
        try:
            response = upload(api, image_bytes(size=(400, 300)), label="mug")
        finally:
            photo_upload_validating.disconnect(dispatch_uid="test-delete-label")
        assert_error(response, 422, "unknown_label", fields=["label"])
        assert Photo.objects.count() == 0 and assert_no_orphans() == []
