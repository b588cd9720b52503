"""Photos: validate, store and record one upload (exact and near duplicates, idempotency keys)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from collector import storage
from collector.lib import images
from collector.models import Label, Photo, PhotoStatus
from collector.services.review import photo_decide_locked
from collector.signals import photo_created, photo_upload_validating
from collector.lib.decode_budget import BudgetTimeout, DecodeBudget
from config.domain_errors import Conflict, TooLarge, Unavailable, Unprocessable, Unsupported


# collector.lib.images names what is wrong with an image; each name is one domain kind.
_IMAGE_ERROR_KIND = {"unsupported": Unsupported, "too_many_pixels": TooLarge, "corrupt": Unprocessable}


_budgets: dict[tuple, DecodeBudget] = {}


def decode_budget() -> DecodeBudget:
    """This host's image-decode memory budget (PHOTO_DECODE_MEMORY_MB, shared by every worker through
    its lock file under CROWDLENS_VAR_DIR; collector.lib.decode_budget)."""
    key = (str(settings.VAR_DIR), settings.PHOTO_DECODE_MEMORY_MB, settings.PHOTO_DECODE_WAIT_SECONDS)
    if key not in _budgets:
        _budgets[key] = DecodeBudget(settings.VAR_DIR / "decode-budget.lock", settings.PHOTO_DECODE_MEMORY_MB,
                                     wait_seconds=settings.PHOTO_DECODE_WAIT_SECONDS)
    return _budgets[key]


@dataclass(frozen=True)
class PhotoCreateResult:
    photo: Photo
    created: bool


def photo_create(
    *,
    user,
    image_file: BinaryIO,
    label_slug: str,
    challenge_id: int | None = None,
    captured_at=None,
    device_model: str = "",
    app_version: str = "",
    predicted_label: str = "",
    predicted_confidence: float | None = None,
    model_version: int | None = None,
    idempotency_key: str | None = None,
    auto_approve_by=None,
) -> PhotoCreateResult:
    """Validate, store and record one uploaded photo.

    Order matters for consistency: cheap checks, then decode, then files are
    written to storage, then the row is created in a transaction. If the
    transaction fails the files are deleted again; if storage fails nothing
    reaches the database.
    """
    sha256 = images.sha256_of(image_file)

    existing = _photo_existing(user=user, sha256=sha256, idempotency_key=idempotency_key)
    if existing is not None:
        return _photo_again(existing, label_slug=label_slug)

    label = _label_active(label_slug)
    photo_upload_validating.send(sender=Photo, user=user, label=label, challenge_id=challenge_id, now=timezone.now())

    try:
        processed = images.process_upload(
            image_file,
            max_pixels=settings.PHOTO_MAX_PIXELS,
            training_short_side=settings.PHOTO_TRAINING_SHORT_SIDE,
            thumbnail_size=settings.PHOTO_THUMBNAIL_SIZE,
            sha256=sha256,
            max_pixels_full_decode=settings.PHOTO_MAX_PIXELS_PNG_WEBP,
            budget=decode_budget().hold,
        )
    except images.ImageError as exc:
        raise _IMAGE_ERROR_KIND[exc.code](exc.message, code=exc.code, fields={"image": [exc.message]}) from None
    except BudgetTimeout:
        raise Unavailable("The server is busy decoding other large images; nothing was recorded. Retry in a minute.",
                          fields={"image": ["Not decoded: the server is busy."]}) from None

    prefix = storage.new_photo_prefix()
    ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}[processed.source_format]
    written: list[str] = []
    try:
        image_file.seek(0)
        written.append(storage.save(f"{prefix}/original.{ext}", _as_file(image_file)))
        written.append(storage.save(f"{prefix}/train.jpg", processed.training.data))
        written.append(storage.save(f"{prefix}/thumb.jpg", processed.thumbnail.data))
    except Exception:
        storage.delete_quietly(written)
        raise

    bands = images.hash_bands(processed.phash)
    try:
        with transaction.atomic():
            near = _near_duplicate(processed.phash, bands)
            photo = Photo.objects.create(
                volunteer=user,
                label=label,
                sha256=sha256,
                phash=f"{processed.phash:016x}",
                phash_band0=bands[0], phash_band1=bands[1], phash_band2=bands[2], phash_band3=bands[3],
                near_duplicate_of=near,
                source_format=processed.source_format,
                byte_size=_size_of(image_file),
                width=processed.width,
                height=processed.height,
                original_key=written[0],
                training_key=written[1],
                thumbnail_key=written[2],
                challenge_id=challenge_id,
                captured_at=captured_at,
                device_model=device_model,
                app_version=app_version,
                predicted_label=predicted_label,
                predicted_confidence=predicted_confidence,
                model_version=model_version,
                idempotency_key=idempotency_key or None,
            )
            photo_created.send(sender=Photo, photo=photo)
            if auto_approve_by is not None:
                photo_decide_locked(photo=photo, reviewer=auto_approve_by, decision=PhotoStatus.APPROVED, reason="",
                                    label=None, note="imported", allow_own=True)
    except IntegrityError:
        # Lost a race with an identical request (same key or same bytes):
        # answer with the winner's photo and take our files back.
        # Or an admin deleted the label (one without photos) while these bytes were on their way.
        storage.delete_quietly(written)
        existing = _photo_existing(user=user, sha256=sha256, idempotency_key=idempotency_key)
        if existing is None:
            if not Label.objects.filter(pk=label.pk).exists():
                _label_active(label_slug)  # raises the same 422 as a label that never existed
            raise
        return _photo_again(existing, label_slug=label_slug)
    except BaseException:
        storage.delete_quietly(written)
        raise
    return PhotoCreateResult(photo, created=True)


def _label_active(slug: str) -> Label:
    label = Label.objects.filter(slug=slug).first()
    if label is None or not label.active:
        raise Unprocessable(f"There is no active label {slug!r}.", code="unknown_label",
                            fields={"label": ["Unknown or inactive label."]})
    return label


def _photo_again(existing: Photo, *, label_slug: str) -> PhotoCreateResult:
    """The answer to bytes this volunteer already sent.

    The same label is a retry (the phone lost our answer): the original photo,
    not created. Anything else must not look accepted: an unknown label is
    refused exactly as for new bytes, and another label is a conflict naming
    the photo and label we kept, so the phone can tell its user. "The same
    label" is the one the photo was uploaded with, or its label now, so that a
    retry after a reviewer relabelled the photo is still a retry.
    """
    if label_slug == existing.label.slug or label_slug == existing.label_as_uploaded.slug:
        return PhotoCreateResult(existing, created=False)
    _label_active(label_slug)
    kept = existing.label.slug
    raise Conflict(
        f"This image was already uploaded as photo {existing.pk} with the label {kept!r}; it was not added again.",
        code="duplicate_other_label",
        fields={"label": [f"Already uploaded with the label {kept!r}."],
                "existing_photo": [str(existing.pk)], "existing_label": [kept]},
    )


def _as_file(stream: BinaryIO):
    from django.core.files import File

    return stream if isinstance(stream, File) else File(stream)


def _size_of(stream: BinaryIO) -> int:
    size = getattr(stream, "size", None)
    if size is not None:
        return size
    pos = stream.tell()
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(pos)
    return size


def _photo_existing(*, user, sha256: str, idempotency_key: str | None) -> Photo | None:
    if idempotency_key:
        keyed = Photo.objects.filter(volunteer=user, idempotency_key=idempotency_key).first()
        if keyed is not None:
            if keyed.sha256 != sha256:
                raise Unprocessable(
                    "This Idempotency-Key was already used for a different image.", code="idempotency_key_reused",
                    fields={"Idempotency-Key": ["Already used with other bytes."]},
                )
            return keyed
    return Photo.objects.filter(volunteer=user, sha256=sha256).first()


def _near_duplicate(phash: int, bands: tuple[int, int, int, int]) -> Photo | None:
    if not images.hash_is_informative(phash):
        return None
    max_distance = settings.PHOTO_NEAR_DUPLICATE_DISTANCE
    candidates = (
        Photo.objects.filter(
            Q(phash_band0=bands[0]) | Q(phash_band1=bands[1]) | Q(phash_band2=bands[2]) | Q(phash_band3=bands[3])
        )
        .exclude(status=PhotoStatus.WITHDRAWN)
        .order_by("created_at", "id")
        .values_list("id", "phash")[:500]
    )
    best = None
    for photo_id, hex_hash in candidates:
        distance = images.hamming(phash, int(hex_hash, 16))
        if distance <= max_distance and (best is None or distance < best[0]):
            best = (distance, photo_id)
    return Photo(pk=best[1]) if best else None
