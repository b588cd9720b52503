"""Features: staff make an approved photo a "photo of the day" (points for its volunteer), or take it back."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from challenges import periods
from challenges.models import Feature
from challenges.services.points import photo_lock, photo_settle_locked
from collector import selectors as collector_selectors
from collector.models import PhotoStatus
from config.domain_errors import Conflict, Forbidden


def _require_staff(user) -> None:
    if not (getattr(user, "is_authenticated", False) and user.is_staff):
        raise Forbidden("Only staff can feature photos.")


def photo_feature(*, photo_id: int, staff_user, on: dt.date | None = None, now: dt.datetime | None = None) -> Feature:
    """Make an approved photo a "photo of the day" (once per photo; featuring again changes nothing)."""
    _require_staff(staff_user)
    now = now or timezone.now()
    with transaction.atomic():
        photo = collector_selectors.photo_locked(photo_id, required=True)
        if photo.status != PhotoStatus.APPROVED:
            raise Conflict("Only approved photos can be featured.", code="not_approved")
        feature, created = Feature.objects.get_or_create(
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
        deleted, _ = Feature.objects.filter(photo=photo).delete()
        if deleted:
            photo_settle_locked(photo=photo, now=now, actor=staff_user, note="feature removed")
    return bool(deleted)
