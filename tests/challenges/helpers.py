"""Helpers for the challenges tests: state in, facts out."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from challenges import periods, services
from challenges.models import Challenge, PointEntry, Score
from collector import services as collector_services
from collector.models import Photo, PhotoStatus
from tests.factories import image_bytes, make_label, make_reviewer, make_volunteer


def make_challenge(*, label=None, day: dt.date | None = None, **kwargs) -> Challenge:
    label = label or make_label()
    day = day or periods.challenge_date_at(timezone.now())
    return services.challenge_create(day=day, label=label, **kwargs)


def upload_photo(*, volunteer=None, label=None, challenge=None, seed=None) -> Photo:
    from django.core.files.uploadedfile import SimpleUploadedFile

    volunteer = volunteer or make_volunteer()
    label = label or (challenge.label if challenge else make_label())
    return collector_services.photo_create(
        user=volunteer.user, image_file=SimpleUploadedFile("p.jpg", image_bytes(size=(64, 48), seed=seed)),
        label_slug=label.slug, challenge_id=challenge.pk if challenge else None,
    ).photo


_reviewer = None


def review(photo: Photo, decision: str, *, reviewer=None, label_slug=None) -> Photo:
    reviewer = reviewer or make_reviewer()
    return collector_services.photo_review(
        photo_id=photo.pk, reviewer=reviewer, decision=decision,
        reason="" if decision == "approve" else "blurry", label_slug=label_slug,
    )


def approved_photo(**kwargs) -> Photo:
    photo = upload_photo(**kwargs)
    review(photo, "approve")
    photo.refresh_from_db()
    return photo


def points_of(user, period: str = "all") -> int:
    row = Score.objects.filter(volunteer=user, period=period).values_list("points", flat=True).first()
    return row or 0


def ledger_sum(user) -> int:
    return sum(PointEntry.objects.filter(volunteer=user).values_list("points", flat=True))


def ledger_reasons(user) -> list[tuple[str, int]]:
    return list(PointEntry.objects.filter(volunteer=user).order_by("id").values_list("reason", "points"))


__all__ = ["make_challenge", "upload_photo", "review", "approved_photo", "points_of", "ledger_sum", "ledger_reasons",
           "PhotoStatus"]
