"""Reads of the collector app. Other apps read photos and labels only through here."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from collector.models import Label, Photo, PhotoStatus, Volunteer
from collector.signals import labels_ranking
from collector.models import photo_thumbnail_url  # noqa: F401  (the one thumbnail URL rule, for other apps)
from collector.models import volunteer_is  # noqa: F401  (the one "who took this photo" rule, for other apps)


def label_list_active() -> QuerySet[Label]:
    return Label.objects.filter(active=True).annotate(
        approved_count=Count("photos", filter=Q(photos__status=PhotoStatus.APPROVED))
    ).order_by("slug")


def volunteer_is_bootstrap(*, user_id: int) -> bool:
    """Whether the account is photos_import's bootstrap account (its photos earn no points)."""
    return Volunteer.objects.filter(user_id=user_id, is_bootstrap=True).exists()


def bootstrap_user_ids() -> list[int]:
    """User ids of every bootstrap account (a handful at most: one per imported set)."""
    return list(Volunteer.objects.filter(is_bootstrap=True).values_list("user_id", flat=True))


def label_get(*, slug: str) -> Label | None:
    return Label.objects.filter(slug=slug).first()


def photo_list_for_user(*, user, status: str | None = None) -> QuerySet[Photo]:
    qs = Photo.objects.filter(volunteer=user).select_related("label")
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def photo_get_for_user(*, user, photo_id: int) -> Photo | None:
    return Photo.objects.filter(volunteer=user, pk=photo_id).select_related("label").first()


def photo_is_public(photo: Photo) -> bool:
    """Approved photos of volunteers who agreed to public credit may be shown to anyone."""
    if photo.status != PhotoStatus.APPROVED or photo.volunteer_id is None:
        return False
    return Volunteer.objects.filter(user_id=photo.volunteer_id, consent_public_credit=True).exists()


def photo_can_view(*, user, photo: Photo) -> bool:
    if user.is_authenticated and (photo.is_owned_by(user) or user.has_perm("collector.review_photo")):
        return True
    return photo_is_public(photo)


def photo_counts_for_user(*, user) -> dict[str, int]:
    rows = Photo.objects.filter(volunteer=user).values("status").annotate(n=Count("id"))
    counts = {s: 0 for s in (PhotoStatus.PENDING, PhotoStatus.APPROVED, PhotoStatus.REJECTED)}
    for row in rows:
        if row["status"] in counts:
            counts[row["status"]] = row["n"]
    return counts


def photos_approved(*, up_to=None) -> QuerySet[Photo]:
    """Approved photos (never rejected, pending or withdrawn), optionally up to an approval cutoff."""
    qs = Photo.objects.filter(status=PhotoStatus.APPROVED).exclude(training_key="")
    if up_to is not None:
        qs = qs.filter(approved_at__lte=up_to)
    return qs.select_related("label")


def photos_last_change():
    """When any photo last changed (status, label, withdrawal): training skips a night with nothing new."""
    latest = Photo.objects.order_by("-updated_at").values_list("updated_at", flat=True).first()
    return latest


def volunteer_for_user(user) -> Volunteer | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Volunteer.objects.filter(user=user).first()


def photos_public(*, approved_since=None, approved_until=None, ids=None) -> QuerySet[Photo]:
    """Approved photos of volunteers who consented to public credit (the newsletter's and galleries' pool),
    annotated with ``credit_name`` (the volunteer's display name)."""
    from django.db.models import F

    qs = Photo.objects.filter(
        status=PhotoStatus.APPROVED, volunteer__volunteer__consent_public_credit=True
    ).exclude(thumbnail_key="")
    if approved_since is not None:
        qs = qs.filter(approved_at__gte=approved_since)
    if approved_until is not None:
        qs = qs.filter(approved_at__lt=approved_until)
    if ids is not None:
        qs = qs.filter(pk__in=list(ids))
    return qs.select_related("label").annotate(credit_name=F("volunteer__volunteer__display_name"))


def volunteer_public_names(*, user_ids) -> dict[int, str]:
    """user id -> the name public pages may show right now (display name only with consent)."""
    return {v.user_id: v.public_name for v in Volunteer.objects.filter(user_id__in=list(user_ids))}


def photos_uploaded_since(*, since) -> QuerySet[Photo]:
    """Photos uploaded at or after `since` that are pending or approved (training's server predictions)."""
    return (Photo.objects.filter(created_at__gte=since, status__in=[PhotoStatus.PENDING, PhotoStatus.APPROVED])
            .order_by("id"))


def label_list_ranked() -> list[Label]:
    """Active labels, most needed first (GET /api/v1/labels/, the camera page): each with approved_count and
    need_rank, recall, confused_with, hint, as collector.signals.labels_ranking's receiver says."""
    labels = list(label_list_active())
    ranking = next((answer for _, answer in labels_ranking.send(sender=Label, labels=labels) if answer), None) or {}
    for position, label in enumerate(labels, start=1):
        need = ranking.get(label.slug) or {}
        label.need_rank = need.get("rank", position)
        label.recall = need.get("recall")
        label.confused_with = need.get("confused_with")
        label.hint = need.get("hint", "")
    return sorted(labels, key=lambda label: label.need_rank)
