"""Writes of the collector app: volunteers, labels, photos, reviews."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.authtoken.models import Token

from collector import storage
from collector.lib import images
from collector.models import Label, Photo, PhotoReview, PhotoStatus, RejectionReason, Volunteer
from collector.signals import photo_created, photo_status_changed, photo_upload_validating
from config.domain_errors import Conflict, Forbidden, Invalid, TooLarge, Unprocessable, Unsupported

logger = logging.getLogger(__name__)
User = get_user_model()


# --- volunteers -----------------------------------------------------------


def volunteer_register(
    *,
    display_name: str,
    password: str | None = None,
    email: str = "",
    consent_training: bool,
    consent_public_credit: bool = False,
) -> tuple[Volunteer, Token]:
    if not consent_training:
        raise Invalid("Consent to use the photos for training is required.",
                      fields={"consent_training": ["Must be true."]})
    with transaction.atomic():
        if User.objects.filter(username__iexact=display_name).exists():
            raise Invalid("That display name is taken.", fields={"display_name": ["Already taken."]})
        try:
            user = User.objects.create_user(username=display_name, email=email or "", password=password or None)
            if not password:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            volunteer = Volunteer.objects.create(
                user=user,
                display_name=display_name,
                consent_training=True,
                consent_public_credit=consent_public_credit,
            )
        except IntegrityError:
            raise Invalid("That display name is taken.", fields={"display_name": ["Already taken."]}) from None
        token = Token.objects.create(user=user)
    return volunteer, token


def volunteer_get_or_create_for_user(*, user) -> Volunteer:
    """Staff and operators who upload get a volunteer profile on first use."""
    try:
        return user.volunteer
    except Volunteer.DoesNotExist:
        volunteer, _ = Volunteer.objects.get_or_create(
            user=user, defaults={"display_name": user.username[:40], "consent_training": True}
        )
        return volunteer


def volunteer_delete(*, user) -> int:
    """Delete the account: photos leave every future dataset and their files leave storage.

    Returns the number of photos withdrawn. Deleting the user any other way
    (Django's user admin, a shell) does the same through the pre_delete
    receiver in collector.receivers, so no path leaves a deleted volunteer's photos
    in datasets or their files in storage.
    """
    with transaction.atomic():
        withdrawn = photos_withdraw_for_user(user=user)
        user.delete()
    return withdrawn


def photos_withdraw_for_user(*, user, notify: bool = True) -> int:
    """Mark a volunteer's photos withdrawn and delete their files after the commit.

    Rows are kept, without files or owner, so that published dataset
    manifests still make sense; status ``withdrawn`` keeps them out of every
    future dataset. ``notify=False`` (used while the user row itself is being
    deleted) skips photo_status_changed: receivers would write rows pointing
    at a user that Django has already collected for deletion, and everything
    they keep per user is deleted with it anyway.
    """
    with transaction.atomic():
        photos = list(Photo.objects.select_for_update().filter(volunteer=user))
        if not photos:
            return 0
        keys = [key for photo in photos for key in photo.storage_keys]
        now = timezone.now()
        for photo in photos:
            old_status = photo.status
            photo.status = PhotoStatus.WITHDRAWN
            photo.withdrawn_at = now
            photo.save(update_fields=["status", "withdrawn_at", "updated_at"])
            if notify:
                photo_status_changed.send(
                    sender=Photo, photo=photo, old_status=old_status, new_status=photo.status,
                    old_label_id=photo.label_id, reviewer=None,
                )
        Photo.objects.filter(pk__in=[p.pk for p in photos]).update(
            volunteer=None, original_key="", training_key="", thumbnail_key="", idempotency_key=None
        )
        transaction.on_commit(lambda: storage.delete_quietly(keys))
    return len(photos)


# --- labels ---------------------------------------------------------------


@dataclass
class LabelImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def labels_import(*, text: str) -> LabelImportResult:
    """One slug per line, or CSV rows slug,name,description. Idempotent."""
    from django.utils.text import slugify

    result = LabelImportResult()
    rows = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        if not row or not row[0].strip() or row[0].strip().startswith("#"):
            continue
        if row[0].strip().lower() == "slug":  # header
            continue
        where = f"Line {reader.line_num}"
        if len(row) > 3:
            raise ValueError(f"{where}: expected slug[,name[,description]], got {len(row)} columns")
        slug = slugify(row[0].strip())
        if not slug:
            raise ValueError(f"{where}: not a usable slug: {row[0]!r}")
        name = row[1].strip() if len(row) > 1 and row[1].strip() else slug.replace("-", " ").capitalize()
        description = row[2].strip() if len(row) > 2 else None
        for field, value, limit in (("slug", slug, Label._meta.get_field("slug").max_length),
                                    ("name", name, Label._meta.get_field("name").max_length)):
            if len(value) > limit:
                raise ValueError(f"{where}: the {field} is longer than {limit} characters")
        rows.append((slug, name, description))
    with transaction.atomic():
        for slug, name, description in rows:
            label, created = Label.objects.get_or_create(slug=slug, defaults={"name": name, "description": description or ""})
            if created:
                result.created += 1
                continue
            changed = label.name != name or (description is not None and label.description != description)
            if changed:
                label.name = name
                if description is not None:
                    label.description = description
                label.save(update_fields=["name", "description"])
                result.updated += 1
            else:
                result.unchanged += 1
    return result


# --- photos ---------------------------------------------------------------

# collector.lib.images names what is wrong with an image; each name is one domain kind.
_IMAGE_ERROR_KIND = {"unsupported": Unsupported, "too_many_pixels": TooLarge, "corrupt": Unprocessable}


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
        return PhotoCreateResult(existing, created=False)

    label = Label.objects.filter(slug=label_slug).first()
    if label is None or not label.active:
        raise Unprocessable(f"There is no active label {label_slug!r}.", code="unknown_label",
                            fields={"label": ["Unknown or inactive label."]})
    photo_upload_validating.send(sender=Photo, user=user, label=label, challenge_id=challenge_id, now=timezone.now())

    try:
        processed = images.process_upload(
            image_file,
            max_pixels=settings.PHOTO_MAX_PIXELS,
            training_short_side=settings.PHOTO_TRAINING_SHORT_SIDE,
            thumbnail_size=settings.PHOTO_THUMBNAIL_SIZE,
            sha256=sha256,
        )
    except images.ImageError as exc:
        raise _IMAGE_ERROR_KIND[exc.code](exc.message, code=exc.code, fields={"image": [exc.message]}) from None

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
                _photo_decide(photo=photo, reviewer=auto_approve_by, decision=PhotoStatus.APPROVED, reason="", label=None,
                              note="imported", allow_own=True)
    except IntegrityError:
        # Lost a race with an identical request (same key or same bytes):
        # answer with the winner's photo and take our files back.
        storage.delete_quietly(written)
        existing = _photo_existing(user=user, sha256=sha256, idempotency_key=idempotency_key)
        if existing is None:
            raise
        return PhotoCreateResult(existing, created=False)
    except BaseException:
        storage.delete_quietly(written)
        raise
    return PhotoCreateResult(photo, created=True)


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


# --- review ---------------------------------------------------------------


_OWN_PHOTO = "Reviewers never review their own photos."


def photo_review(*, photo_id: int, reviewer, decision: str, reason: str = "", label_slug: str | None = None,
                 note: str = "") -> Photo:
    """Approve or reject one photo (optionally relabelling it), recording who and when."""
    if decision not in ("approve", "reject"):
        raise Invalid("decision must be approve or reject.", fields={"decision": ["approve or reject"]})
    status = PhotoStatus.APPROVED if decision == "approve" else PhotoStatus.REJECTED
    if status == PhotoStatus.REJECTED and reason not in RejectionReason.values:
        raise Invalid("A rejection needs a reason: " + ", ".join(RejectionReason.values) + ".",
                      fields={"reason": ["Required when rejecting."]})
    label = None
    if label_slug:
        label = Label.objects.filter(slug=label_slug).first()
        if label is None:
            raise Invalid(f"There is no label {label_slug!r}.", fields={"label": ["Unknown label."]})
    with transaction.atomic():
        photo = Photo.objects.lock_or_404(photo_id)
        _photo_decide(photo=photo, reviewer=reviewer, decision=status, reason=reason, label=label, note=note)
    return photo


def _photo_decide(*, photo: Photo, reviewer, decision: str, reason: str, label: Label | None, note: str,
                  allow_own: bool = False) -> None:
    """Assumes the caller holds the row lock (select_for_update) or just created the row."""
    if photo.status == PhotoStatus.WITHDRAWN:
        raise Conflict("This photo was withdrawn by its volunteer.", code="withdrawn")
    if not allow_own and photo.is_owned_by(reviewer):
        raise Forbidden(_OWN_PHOTO, code="own_photo")
    old_status, old_label_id = photo.status, photo.label_id
    now = timezone.now()
    photo.status = decision
    photo.reviewed_by = reviewer
    photo.reviewed_at = now
    photo.rejection_reason = reason if decision == PhotoStatus.REJECTED else ""
    photo.review_note = note[:500]
    if label is not None:
        photo.label = label
    if decision == PhotoStatus.APPROVED and old_status != PhotoStatus.APPROVED:
        photo.approved_at = now
    elif decision != PhotoStatus.APPROVED:
        photo.approved_at = None
    photo.save()
    PhotoReview.objects.create(
        photo=photo, reviewer=reviewer, decision=decision, reason=photo.rejection_reason, note=photo.review_note,
        label_before_id=old_label_id, label_after_id=photo.label_id,
    )
    if old_status != decision or old_label_id != photo.label_id:
        photo_status_changed.send(
            sender=Photo, photo=photo, old_status=old_status, new_status=decision, old_label_id=old_label_id,
            reviewer=reviewer,
        )


def photo_relabel(*, photo_id: int, reviewer, label_slug: str) -> Photo:
    """Change the label and keep the status (pending stays pending, approved stays approved)."""
    label = Label.objects.filter(slug=label_slug).first()
    if label is None:
        raise Invalid(f"There is no label {label_slug!r}.", fields={"label": ["Unknown label."]})
    with transaction.atomic():
        photo = Photo.objects.lock_or_404(photo_id)
        if photo.is_owned_by(reviewer):
            raise Forbidden(_OWN_PHOTO, code="own_photo")
        old_label_id = photo.label_id
        if old_label_id == label.pk:
            return photo
        photo.label = label
        photo.save(update_fields=["label", "updated_at"])
        PhotoReview.objects.create(photo=photo, reviewer=reviewer, decision=photo.status, note="relabel",
                                   label_before_id=old_label_id, label_after_id=label.pk)
        photo_status_changed.send(sender=Photo, photo=photo, old_status=photo.status, new_status=photo.status,
                                  old_label_id=old_label_id, reviewer=reviewer)
    return photo


# --- reviewers ------------------------------------------------------------

REVIEWERS_GROUP = "Reviewers"
# What a reviewer needs in the admin: decide on photos, see labels, volunteers and the audit trail.
REVIEWER_PERMISSIONS = (
    "collector.review_photo",
    "collector.view_photo",
    "collector.change_photo",
    "collector.view_photoreview",
    "collector.view_label",
    "collector.view_volunteer",
)


def reviewers_group_sync(*, add_usernames: list[str] = (), remove_usernames: list[str] = ()):
    """Create the Reviewers group (or put missing permissions back) and add or remove members.

    Members become staff (the admin needs it). Unknown usernames raise
    ValueError before anything changes.
    """
    from django.contrib.auth.models import Group, Permission

    wanted = set(add_usernames) | set(remove_usernames)
    users = {u.username: u for u in User.objects.filter(username__in=wanted)}
    missing = sorted(wanted - users.keys())
    if missing:
        raise ValueError("No such user: " + ", ".join(missing))
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=REVIEWERS_GROUP)
        perms = []
        for dotted in REVIEWER_PERMISSIONS:
            app_label, codename = dotted.split(".")
            perms.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.add(*perms)  # add, never strip what an admin granted on purpose
        for name in add_usernames:
            user = users[name]
            if not user.is_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
            user.groups.add(group)
        for name in remove_usernames:
            users[name].groups.remove(group)
    return group
