"""Reads of the newsletter app: the sections of an edition, the archive, sending progress.

Each section of an edition is computed by one small function here that reads
another app through its selectors (collector, challenges, training). A section
whose source is missing or fails is left empty rather than stopping the
edition: a newsletter without a leaderboard is better than no newsletter.
"""

from __future__ import annotations

import importlib
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from collector import selectors as collector_selectors
from newsletter.models import Delivery, DeliveryStatus, Edition, EditionStatus, Subscriber, SubscriberStatus

logger = logging.getLogger(__name__)

_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


# --- schedule -----------------------------------------------------------------


def period_length() -> timedelta:
    return timedelta(days=1) if settings.NEWSLETTER_FREQUENCY == "daily" else timedelta(days=7)


def slot_latest(*, now: datetime | None = None) -> datetime:
    """The most recent send slot at or before ``now`` (weekday and hour in TIME_ZONE)."""
    now = timezone.localtime(now or timezone.now())
    slot = now.replace(hour=settings.NEWSLETTER_HOUR, minute=0, second=0, microsecond=0)
    if settings.NEWSLETTER_FREQUENCY == "weekly":
        slot -= timedelta(days=(slot.weekday() - _WEEKDAYS.index(settings.NEWSLETTER_WEEKDAY)) % 7)
    while slot > now:
        slot -= period_length()
    return slot


# --- subscribers ----------------------------------------------------------------


def subscriber_get(*, email: str) -> Subscriber | None:
    return Subscriber.objects.filter(email=email.strip().lower()).first()


def subscribers_confirmed() -> QuerySet[Subscriber]:
    return Subscriber.objects.filter(status=SubscriberStatus.CONFIRMED)


# --- sections -------------------------------------------------------------------


def _optional(module: str, name: str):
    """A selector of another app, or None while that app does not provide it."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _get(row: Any, name: str, default=None):
    if isinstance(row, dict):
        return row.get(name, default)
    return getattr(row, name, default)


def _plain(value):
    """JSON-safe copy of a number (Decimal, numpy) or None."""
    if value is None:
        return None
    try:
        return float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        return None


def section_best_photos(*, since: datetime, until: datetime, limit: int) -> list[dict]:
    """The best public photos of the period: challenges' ranking (votes, staff picks) where it exists,
    otherwise the latest approvals. Only photos of volunteers who consented to public credit."""
    rows: list[tuple[int, int]] = []  # (photo id, votes)
    best_photos = _optional("challenges.selectors", "best_photos")
    if best_photos is not None:
        try:
            for row in best_photos(since=since, until=until, limit=limit, public_only=True):
                photo_id = _get(row, "photo_id") or _get(row, "id") or getattr(_get(row, "photo"), "pk", None)
                if photo_id:
                    rows.append((int(photo_id), int(_get(row, "votes", 0) or 0)))
        except Exception:  # another app's failure must not stop the edition
            logger.exception("challenges.selectors.best_photos failed; using the latest approvals")
            rows = []
    if not rows:
        latest = collector_selectors.photos_public(approved_since=since, approved_until=until).order_by(
            "-approved_at", "-id")[:limit]
        rows = [(p.pk, 0) for p in latest]
    # Whatever the source, consent is checked here again: credit only with consent.
    public = {p.pk: p for p in collector_selectors.photos_public(ids=[pk for pk, _ in rows])}
    out = []
    for photo_id, votes in rows:
        photo = public.get(photo_id)
        if photo is not None:
            out.append({"photo_id": photo.pk, "label": photo.label.slug, "label_name": photo.label.name,
                        "credit": photo.credit_name, "votes": votes})
    return out[:limit]


def section_challenge_winners(*, since: datetime, until: datetime) -> list[dict]:
    challenge_winners = _optional("challenges.selectors", "challenge_winners")
    if challenge_winners is None:
        return []
    try:
        rows = list(challenge_winners(since=since, until=until))
    except Exception:
        logger.exception("challenges.selectors.challenge_winners failed")
        return []
    out = []
    for row in rows:
        name = _get(row, "display_name") or _get(row, "winner")
        if not name:
            continue
        day = _get(row, "date") or _get(row, "day")
        photo_id = _get(row, "photo_id")
        out.append({
            "challenge": str(_get(row, "title") or _get(row, "label_name") or _get(row, "label") or "Daily challenge"),
            "date": day.isoformat() if hasattr(day, "isoformat") else (str(day) if day else ""),
            "display_name": str(name),
            "points": _plain(_get(row, "points")),
            "photo_id": int(photo_id) if photo_id else None,
        })
    return out


def section_leaderboard(*, limit: int = 10) -> list[dict]:
    leaderboard = _optional("challenges.selectors", "leaderboard")
    if leaderboard is None:
        return []
    try:
        page = leaderboard(period="week", limit=limit)
    except Exception:
        logger.exception("challenges.selectors.leaderboard failed")
        return []
    rows = _get(page, "rows", page) or []
    return [
        {"rank": int(_get(r, "rank", i + 1)), "display_name": str(_get(r, "display_name", "")),
         "points": _plain(_get(r, "points", 0)), "approved_photos": _plain(_get(r, "approved_photos"))}
        for i, r in enumerate(list(rows)[:limit])
    ]


def _version_row(version) -> dict:
    published = _get(version, "published_at")
    accuracy = _get(version, "accuracy")
    if accuracy is None:
        metrics = _get(version, "metrics") or {}
        accuracy = metrics.get("accuracy") if isinstance(metrics, dict) else None
    return {
        "version": _get(version, "version", _get(version, "pk")),
        "published_at": published.isoformat() if hasattr(published, "isoformat") else None,
        "accuracy": _plain(accuracy),
    }


def section_model_news(*, since: datetime, until: datetime, previous: dict | None) -> dict:
    """New model versions, the change in accuracy and the labels whose recall rose since the previous edition."""
    versions_fn = _optional("training.selectors", "model_versions_published")
    recall_fn = _optional("training.selectors", "latest_recall_by_label")
    in_service_fn = _optional("training.selectors", "model_in_service")
    news: dict = {"versions": [], "accuracy": None, "accuracy_before": None, "recall": {}, "improved": []}
    try:
        if versions_fn is not None:
            news["versions"] = [_version_row(v) for v in versions_fn(since=since, until=until)]
        if in_service_fn is not None:
            current = in_service_fn()
            if current is not None:
                news["accuracy"] = _version_row(current)["accuracy"]
        if recall_fn is not None:
            news["recall"] = {str(k): float(v) for k, v in (recall_fn() or {}).items() if v is not None}
    except Exception:
        logger.exception("training selectors failed; model news left out")
    before = (previous or {}).get("model") or {}
    news["accuracy_before"] = before.get("accuracy")
    old_recall = before.get("recall") or {}
    news["improved"] = sorted(
        ({"label": slug, "before": old_recall[slug], "now": now}
         for slug, now in news["recall"].items() if slug in old_recall and now > old_recall[slug] + 0.005),
        key=lambda row: row["now"] - row["before"], reverse=True,
    )[:5]
    return news


def section_labels_needed(*, recall: dict[str, float], limit: int) -> list[dict]:
    """Labels to photograph next: least covered against their production target, and worst recognised.

    Score = coverage (approved / production target, at most 1) × recall (1 when
    unknown); the lowest scores come first, and fully covered labels that the
    model already recognises well (score 1) are left out.
    """
    rows = []
    for label in collector_selectors.label_list_active():
        target = label.effective_production_target
        coverage = min(1.0, label.approved_count / target) if target else 1.0
        label_recall = recall.get(label.slug)
        score = coverage * (label_recall if label_recall is not None else 1.0)
        if score < 1.0:
            rows.append({"label": label.slug, "label_name": label.name, "approved": label.approved_count,
                         "target": target, "recall": label_recall, "score": round(score, 4)})
    rows.sort(key=lambda r: (r["score"], r["label"]))
    return rows[:limit]


def edition_content(*, since: datetime, until: datetime, previous: Edition | None) -> dict:
    model = section_model_news(since=since, until=until, previous=previous.content if previous else None)
    return {
        "best_photos": section_best_photos(since=since, until=until, limit=settings.NEWSLETTER_BEST_PHOTOS),
        "challenge_winners": section_challenge_winners(since=since, until=until),
        "leaderboard": section_leaderboard(limit=10),
        "model": model,
        "labels_needed": section_labels_needed(recall=model["recall"], limit=settings.NEWSLETTER_NEEDED_LABELS),
    }


def edition_previous(*, before: datetime) -> Edition | None:
    return Edition.objects.filter(period_end__lt=before).order_by("-period_end").first()


# --- rendering context ------------------------------------------------------------


def thumbnail_url(photo_id: int) -> str:
    return settings.SITE_URL + reverse("photo-thumbnail", kwargs={"photo_id": photo_id})


def edition_render_context(edition: Edition) -> dict:
    """What the templates need: the stored sections, with photos that are still public right now
    (a volunteer who withdrew consent or a photo withdrawn after composing drops out)."""
    content = edition.content or {}
    photos = content.get("best_photos") or []
    still_public = set(collector_selectors.photos_public(ids=[p["photo_id"] for p in photos]).values_list(
        "pk", flat=True))
    best = [{**p, "image_url": thumbnail_url(p["photo_id"])} for p in photos if p["photo_id"] in still_public]
    model = content.get("model") or {}
    accuracy, before = model.get("accuracy"), model.get("accuracy_before")
    return {
        "edition": edition,
        "introduction": edition.introduction,
        "best_photos": best,
        "challenge_winners": content.get("challenge_winners") or [],
        "leaderboard": content.get("leaderboard") or [],
        "model_versions": model.get("versions") or [],
        "accuracy": accuracy,
        "accuracy_change": (accuracy - before) if accuracy is not None and before is not None else None,
        "improved_labels": model.get("improved") or [],
        "labels_needed": content.get("labels_needed") or [],
        "site_url": settings.SITE_URL,
        "archive_url": settings.SITE_URL + reverse("newsletter-archive-detail", kwargs={"edition_id": edition.pk}),
        "archive_index_url": settings.SITE_URL + reverse("newsletter-archive"),
        "subscribe_url": settings.SITE_URL + reverse("newsletter-subscribe-page"),
    }


# --- archive and progress ------------------------------------------------------------


def editions_public() -> QuerySet[Edition]:
    return Edition.objects.filter(status__in=[EditionStatus.SENDING, EditionStatus.SENT]).order_by("-period_end")


def edition_get_public(*, edition_id: int) -> Edition | None:
    return editions_public().filter(pk=edition_id).first()


def edition_progress(edition: Edition) -> dict[str, int]:
    """Delivery counts by status plus the total: what the admin shows while an edition goes out."""
    counts = {s.value: 0 for s in DeliveryStatus}
    for row in Delivery.objects.filter(edition=edition).values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    counts["total"] = sum(counts.values())
    return counts


def editions_due(*, now: datetime | None = None) -> QuerySet[Edition]:
    now = now or timezone.now()
    return Edition.objects.filter(
        Q(status=EditionStatus.SCHEDULED, scheduled_for__lte=now) | Q(status=EditionStatus.SENDING)
    ).order_by("period_end")
