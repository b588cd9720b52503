"""Reads of the newsletter app: the sections of an edition, the archive, sending progress.

Each section of an edition is computed by one small function here that reads
another app through its selectors (collector, challenges, training). Sections
are composed once and stored with the edition (the archive shows what was
sent); names and photos are checked again when rendering, so a volunteer who
withdraws consent after composing is neither shown nor named.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from challenges import selectors as challenges_selectors
from collector import selectors as collector_selectors
from training import selectors as training_selectors
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


def subscribers_confirmed() -> QuerySet[Subscriber]:
    return Subscriber.objects.filter(status=SubscriberStatus.CONFIRMED)


# --- sections -------------------------------------------------------------------


def _version_accuracy(version) -> float | None:
    """Top-1 accuracy (0..1) of the variant phones download, else the gate's, else any measured one."""
    for variant in (version.phone_variant(), settings.TRAINING_GATE_VARIANT):
        value = version.accuracy(variant)
        if value is not None:
            return float(value)
    values = [m.get("accuracy") for m in (version.metrics or {}).values() if isinstance(m, dict)]
    return next((float(v) for v in values if v is not None), None)


def _plain(value):
    return None if value is None else (value if isinstance(value, int) else float(value))


def section_best_photos(*, since: datetime, until: datetime, limit: int) -> list[dict]:
    """The best public photos approved in the period, ranked by challenges (votes plus staff features).
    Only photos of volunteers who consented to public credit, credited by display name."""
    rows = challenges_selectors.best_photos(since=since, until=until, limit=limit, public_only=True)
    # Consent is checked here again, whatever the ranking did: credit only with consent.
    public = {p.pk: p for p in collector_selectors.photos_public(ids=[r.photo_id for r in rows])}
    return [
        {"photo_id": r.photo_id, "label": r.label_slug, "label_name": r.label_name, "credit": public[r.photo_id].credit_name,
         "volunteer_id": r.volunteer_id, "votes": int(r.votes), "featured": bool(r.featured)}
        for r in rows if r.photo_id in public
    ][:limit]


def section_challenge_winners(*, since: datetime, until: datetime, top: int = 3) -> list[dict]:
    """Challenges that ended in the period, each with its top volunteers (public names only)."""
    out = []
    for result in challenges_selectors.challenge_winners(since=since, until=until, top=top):
        challenge = result.challenge
        if challenge.ends_at is not None and challenge.ends_at > until:
            continue  # still running: next edition
        winners = [{"rank": w.rank, "display_name": w.display_name, "volunteer_id": w.volunteer_id,
                    "points": _plain(w.points)} for w in result.winners]
        if winners:
            out.append({"challenge": challenge.title or challenge.label.name, "label": challenge.label.slug,
                        "date": challenge.date.isoformat(), "entries": int(result.entries), "winners": winners})
    return out


def section_leaderboard(*, until: datetime, limit: int = 10) -> dict:
    """The top ten of the last leaderboard period (calendar week, or day for a daily newsletter) that
    had ended by ``until``: a finished ranking, not one that started hours before the edition."""
    period = "day" if settings.NEWSLETTER_FREQUENCY == "daily" else "week"
    current = challenges_selectors.leaderboard(period=period, limit=1, now=until)
    page = challenges_selectors.leaderboard(period=period, limit=limit,
                                            now=current.period_start - timedelta(microseconds=1))
    return {
        "period": period,
        "start": page.period_start.isoformat(),
        "end": page.period_end.isoformat(),
        "rows": [{"rank": r.rank, "display_name": r.display_name, "volunteer_id": r.volunteer_id,
                  "points": _plain(r.points), "approved_photos": _plain(r.approved_photos)} for r in page.rows[:limit]],
    }


def section_model_news(*, since: datetime, until: datetime, previous: dict | None) -> dict:
    """New model versions, the accuracy of the model in service and its change, and the labels whose
    recall rose since the previous edition (each edition keeps the recall it saw, to compare with)."""
    versions = []
    for row in training_selectors.model_versions_published(since=since, until=until):
        accuracy = row.get("accuracy") or {}
        variant = next((v for v in (row.get("default_variant"), settings.TRAINING_DEFAULT_VARIANT,
                                    settings.TRAINING_GATE_VARIANT) if accuracy.get(v) is not None), None)
        interval = (row.get("interval") or {}).get(variant) or [None, None]
        published = row.get("published_at")
        versions.append({"version": row["version"], "published_at": published.isoformat() if published else None,
                         "accuracy": _plain(accuracy.get(variant)), "low": _plain(interval[0]),
                         "high": _plain(interval[1]), "photos": (row.get("photos") or {}).get(variant),
                         "new_labels": list(row.get("new_labels") or [])})
    current = training_selectors.model_in_service()
    recall = {str(k): float(v) for k, v in (training_selectors.latest_recall_by_label() or {}).items()}
    before = (previous or {}).get("model") or {}
    old_recall = before.get("recall") or {}
    improved = sorted(
        ({"label": slug, "before": old_recall[slug], "now": now}
         for slug, now in recall.items() if slug in old_recall and now > old_recall[slug] + 0.005),
        key=lambda row: row["now"] - row["before"], reverse=True,
    )[:5]
    field = training_selectors.model_version_field_accuracy(version=current.version) if current is not None else None
    return {
        "versions": versions,
        "in_service": current.version if current is not None else None,
        # What phones saw in the field, quoted only from enough reviewed photos to mean something.
        "field": ({"version": field["version"], "accuracy": _plain(field["accuracy"]), "samples": field["samples"]}
                  if field and field["samples"] >= settings.TRAINING_FIELD_ACCURACY_MIN_SAMPLES else None),
        "accuracy": _version_accuracy(current) if current is not None else None,
        "accuracy_before": before.get("accuracy"),
        "recall": recall,
        "improved": improved,
    }


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
        "leaderboard": section_leaderboard(until=until, limit=10),
        "model": model,
        "labels_needed": section_labels_needed(recall=model["recall"], limit=settings.NEWSLETTER_NEEDED_LABELS),
        # The week's best at stumping the model (issue 19): most approved photos the model got wrong.
        "stumpers": challenges_selectors.stumpers(since=since, until=until, limit=1),
    }


def edition_has_news(content: dict) -> bool:
    """An edition is worth sending when the period brought photos, winners or a model."""
    return bool(content.get("best_photos") or content.get("challenge_winners")
                or (content.get("model") or {}).get("versions"))


def edition_previous(*, before: datetime) -> Edition | None:
    return Edition.objects.filter(period_end__lt=before).order_by("-period_end").first()


# --- rendering context ------------------------------------------------------------


def thumbnail_url(photo_id: int) -> str:
    return settings.SITE_URL + collector_selectors.photo_thumbnail_url(photo_id)


def edition_render_context(edition: Edition) -> dict:
    """What the templates need: the stored sections, checked again against consent right now.

    A photo whose volunteer withdrew consent (or that was withdrawn) after
    composing drops out, and leaderboard and winner rows show the name that
    public pages may show today ("Volunteer #n" without consent).
    """
    content = copy.deepcopy(edition.content or {})
    photos = content.get("best_photos") or []
    credits = dict(collector_selectors.photos_public(ids=[p["photo_id"] for p in photos]).values_list(
        "pk", "credit_name"))
    best = [{**p, "credit": credits[p["photo_id"]], "image_url": thumbnail_url(p["photo_id"])}
            for p in photos if p["photo_id"] in credits]
    board = content.get("leaderboard") or {}
    leaderboard = board.get("rows") or []
    board_start = datetime.fromisoformat(board["start"]) if board.get("start") else None
    winners = content.get("challenge_winners") or []
    stumpers = content.get("stumpers") or []
    people = [r for r in leaderboard] + [w for c in winners for w in c.get("winners", [])] + stumpers
    names = collector_selectors.volunteer_public_names(
        user_ids={r["volunteer_id"] for r in people if r.get("volunteer_id")})
    for row in people:
        if row.get("volunteer_id"):
            row["display_name"] = names.get(row["volunteer_id"], "A former volunteer")
    model = content.get("model") or {}
    accuracy, before = model.get("accuracy"), model.get("accuracy_before")
    return {
        "edition": edition,
        "introduction": edition.introduction,
        "best_photos": best,
        "challenge_winners": winners,
        "leaderboard": leaderboard,
        "leaderboard_period": board.get("period"),
        "leaderboard_start": timezone.localtime(board_start) if board_start else None,
        "model_versions": model.get("versions") or [],
        "accuracy": accuracy,
        "accuracy_change": (accuracy - before) if accuracy is not None and before is not None else None,
        "improved_labels": model.get("improved") or [],
        "field_accuracy": model.get("field"),
        "labels_needed": content.get("labels_needed") or [],
        "stumpers": stumpers,
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
