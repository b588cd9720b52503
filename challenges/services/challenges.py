"""Daily challenges: which label the model needs most, creating and opening the day's challenge, and
checking that an upload entering a challenge may enter it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from challenges import periods, selectors
from challenges.models import Challenge
from collector import selectors as collector_selectors
from collector.models import Label
from config.domain_errors import Unprocessable


@dataclass(frozen=True)
class LabelChoice:
    label: Label
    reason: str


def challenge_label_choose(*, day: dt.date) -> LabelChoice | None:
    """The label the model needs most on ``day``, not used by a challenge within CHALLENGE_NO_REPEAT_DAYS.

    Once a training run exists: the lowest recall in the latest run (labels
    the run did not know count as recall 0). Before that: the label furthest
    below its targets (under the prototype target first, by the share of it
    reached; then by the share of the production target reached). Ties go to
    the alphabetically first slug. When every label was used recently, the
    one used longest ago wins. None when there is no active label.
    """
    labels = list(collector_selectors.label_list_active())
    if not labels:
        return None
    window = settings.CHALLENGE_NO_REPEAT_DAYS
    recent = set(
        Challenge.objects.filter(date__gt=day - dt.timedelta(days=window), date__lt=day + dt.timedelta(days=window))
        .exclude(date=day).values_list("label_id", flat=True)
    ) if window > 0 else set()
    candidates = [label for label in labels if label.pk not in recent]
    if not candidates:
        last_used = {}
        for label_id, date in Challenge.objects.filter(date__lt=day).order_by("date").values_list("label_id", "date"):
            last_used[label_id] = date
        label = min(labels, key=lambda l: (last_used.get(l.pk, dt.date.min), l.slug))
        return LabelChoice(label, f"every label had a challenge within {window} days; {label.slug} had one longest ago")

    recall = selectors.latest_recall_by_label()
    label = min(candidates, key=lambda l: selectors.label_need_key(l, recall))
    if recall:
        return LabelChoice(label, f"lowest recall in the latest training run ({float(recall.get(label.slug, 0.0)):.2f})")
    return LabelChoice(
        label,
        f"furthest below its targets ({label.approved_count} approved; prototype target "
        f"{label.effective_prototype_target}, production target {label.effective_production_target})",
    )


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def challenge_create(*, day: dt.date, label: Label, title: str = "", prompt: str = "", description: str = "",
                     bonus_points: int | None = None, planned_by=None, selection_note: str = "") -> Challenge:
    """Create the challenge of ``day`` with its default window (CHALLENGE_ROTATE_AT to next day's, in TIME_ZONE)."""
    name = label.name.lower()
    start, end = periods.challenge_window(day)
    return Challenge.objects.create(
        date=day, label=label,
        title=title or f"{label.name} in an unexpected place",
        prompt=prompt or f"Photograph {_article(name)} {name} somewhere nobody would expect one.",
        description=description or label.description,
        starts_at=start, ends_at=end,
        bonus_points=settings.CHALLENGE_BONUS_POINTS if bonus_points is None else bonus_points,
        planned_by=planned_by, selection_note=selection_note[:300],
    )


def challenge_open_for_today(*, now: dt.datetime | None = None) -> Challenge | None:
    """Make sure the challenge of the current challenge day exists and mark it opened.

    A challenge staff planned ahead is kept as planned; otherwise the label is
    chosen by ``challenge_label_choose``. Safe to run twice or concurrently:
    the unique date decides who creates it. None when there is no active label.
    """
    now = now or timezone.now()
    challenge, _ = _challenge_open(day=periods.challenge_date_at(now), now=now)
    return challenge


def _challenge_open(*, day: dt.date, now: dt.datetime) -> tuple[Challenge | None, bool]:
    """(the day's challenge or None without an active label, whether this call is the one that opened it)."""
    challenge = Challenge.objects.filter(date=day).first()
    if challenge is None:
        choice = challenge_label_choose(day=day)
        if choice is None:
            return None, False
        try:
            with transaction.atomic():
                challenge = challenge_create(day=day, label=choice.label, selection_note=choice.reason)
        except IntegrityError:
            challenge = Challenge.objects.get(date=day)
    opened = Challenge.objects.filter(pk=challenge.pk, opened_at__isnull=True).update(opened_at=now) == 1
    challenge.refresh_from_db()
    return challenge, opened


def challenge_open_if_none(*, now: dt.datetime | None = None) -> Challenge | None:
    """Open the current day's challenge when none is open yet; the challenge, if this call opened it.

    The rotate job opens it at CHALLENGE_ROTATE_AT (and when the scheduler
    starts); this catches the installation whose labels came after that run
    (README's first steps import them after `make run`), and a challenge
    planned for today that no rotation opened. A day without any challenge
    gets one only when an active label was created since the day began: a
    day that staff emptied (deleting its challenge) stays empty, as before.
    One indexed query when a challenge is open, so the scheduler can ask
    every few minutes.
    """
    now = now or timezone.now()
    day = periods.challenge_date_at(now)
    opened_at = list(Challenge.objects.filter(date=day).values_list("opened_at", flat=True))
    if opened_at and opened_at[0] is not None:
        return None  # open already
    if not opened_at:  # no challenge today: only for labels that came after the day's rotation
        day_start, _ = periods.challenge_window(day)
        if not collector_selectors.labels_created_since(since=day_start):
            return None
    challenge, opened = _challenge_open(day=day, now=now)
    return challenge if opened else None


def challenge_entry_check(*, challenge_id, label: Label, now: dt.datetime) -> Challenge:
    """Refuse (Unprocessable) an upload entering a challenge that is unknown, not open at ``now``, or for another label."""
    try:
        challenge_id = int(challenge_id)
    except (TypeError, ValueError):
        raise Unprocessable(f"There is no challenge {challenge_id!r}.", code="unknown_challenge",
                            fields={"challenge": ["Unknown challenge."]}) from None
    challenge = Challenge.objects.select_related("label").filter(pk=challenge_id).first()
    if challenge is None:
        raise Unprocessable(f"There is no challenge {challenge_id}.", code="unknown_challenge",
                            fields={"challenge": ["Unknown challenge."]})
    zone = periods.local_zone()
    if now < challenge.starts_at:
        when = challenge.starts_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        raise Unprocessable(f"The challenge \u201c{challenge.title}\u201d opens at {when}; "
                            "this photo was not entered.", code="challenge_not_open",
                            fields={"challenge": ["Not open yet."]})
    if now >= challenge.ends_at:
        when = challenge.ends_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        raise Unprocessable(f"The challenge \u201c{challenge.title}\u201d closed at {when}; "
                            "this photo was not entered.", code="challenge_closed", fields={"challenge": ["Closed."]})
    if challenge.label_id != label.pk:
        raise Unprocessable(f"The challenge \u201c{challenge.title}\u201d is for {challenge.label.slug!r} photos, "
                            f"but this photo is labelled {label.slug!r}.", code="challenge_wrong_label",
                            fields={"challenge": ["For another label."]})
    return challenge
