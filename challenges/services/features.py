"""Features: staff make an approved photo a "photo of the day" (points for its volunteer), or take it back."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from challenges import periods
from challenges.models import PhotoOfTheDay
from challenges.services.points import photo_lock, photo_settle_locked
from collector import selectors as collector_selectors
from collector.models import PhotoStatus
from config.domain_errors import Conflict, Forbidden, NotFound


def _require_staff(user) -> None:
    if not (getattr(user, "is_authenticated", False) and user.is_staff):
        raise Forbidden("Only staff can feature photos.")


def photo_feature(*, photo_id: int, staff_user, on: dt.date | None = None, now: dt.datetime | None = None) -> PhotoOfTheDay:
    """Make an approved photo a "photo of the day" (once per photo; featuring again changes nothing)."""
    _require_staff(staff_user)
    now = now or timezone.now()
    with transaction.atomic():
        photo = collector_selectors.photo_locked(photo_id, required=True)
        if photo.status != PhotoStatus.APPROVED:
            raise Conflict("Only approved photos can be featured.", code="not_approved")
        feature, created = PhotoOfTheDay.objects.get_or_create(
            photo=photo, defaults={"featured_by": staff_user, "featured_on": on or periods.local_date(now)}
        )
        if created:
            photo_settle_locked(photo=photo, now=now, actor=staff_user)
    return feature


def photo_unfeature(*, photo_id: int, staff_user, now: dt.datetime | None = None) -> bool:
    """Remove a feature (its points are taken back). True when there was one."""
    _require_staff(staff_user)
    now = now or timezone.now()
    with transaction.atomic():
        photo = photo_lock(photo_id)
        if photo is None:
            return False
        deleted, _ = PhotoOfTheDay.objects.filter(photo=photo).delete()
        if deleted:
            photo_settle_locked(photo=photo, now=now, actor=staff_user, note="feature removed")
    return bool(deleted)


def photo_feature_change(*, feature_id: int, photo_id: int, on: dt.date, staff_user,
                         now: dt.datetime | None = None) -> PhotoOfTheDay:
    """Staff edit a feature: another day, or another photo. Moving it to another photo moves its points with
    it through the ledger (the old photo's grant is taken back, the new photo's owner is granted), both
    photos locked (in id order, so two edits never deadlock)."""
    _require_staff(staff_user)
    now = now or timezone.now()
    with transaction.atomic():
        feature = PhotoOfTheDay.objects.select_for_update().filter(pk=feature_id).first()
        if feature is None:
            raise NotFound("There is no such feature.")
        old_photo_id = feature.photo_id
        locked = {pid: collector_selectors.photo_locked(pid, required=True) for pid in sorted({old_photo_id, photo_id})}
        feature.featured_on = on
        if photo_id == old_photo_id:
            feature.save(update_fields=["featured_on"])
            return feature
        photo = locked[photo_id]
        if photo.status != PhotoStatus.APPROVED:
            raise Conflict("Only approved photos can be featured.", code="not_approved")
        if PhotoOfTheDay.objects.filter(photo_id=photo_id).exists():
            raise Conflict(f"Photo {photo_id} is already featured.", code="already_featured")
        feature.photo = photo
        feature.featured_by = staff_user
        feature.save(update_fields=["photo", "featured_on", "featured_by"])
        photo_settle_locked(photo=locked[old_photo_id], now=now, actor=staff_user, note="feature moved")
        photo_settle_locked(photo=photo, now=now, actor=staff_user)
    return feature
