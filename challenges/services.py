"""Writes of the challenges app: challenges, points ledger, scores, votes, features, novelty.

How points stay exact (docs/challenges.md has the long version):

* Every change that can move a photo's points (review, relabel, withdrawal,
  vote, feature, novelty) runs with that photo's row locked
  (``select_for_update``; collector's review already holds it when its
  signal arrives) and calls ``_photo_settle``: it computes which grants the
  photo *should* have now, compares with the active grants in the ledger and
  writes only the difference, as new ledger rows. Settling twice changes
  nothing, so a repeated signal or a retried request cannot double-count.
* Each ledger row moves the Score rows of its periods in the same
  transaction with one ``INSERT ... ON CONFLICT DO UPDATE SET points =
  points + excluded.points`` statement, keys sorted so that two
  transactions always lock score rows in the same order (no deadlocks).
* Partial unique indexes on the ledger (one active grant per photo and
  reason, one per vote) back this up inside the database.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from challenges import periods
from challenges.models import (
    Challenge, Feature, PhotoNovelty, PointEntry, PointReason, RankBucket, RankBucketChange, Score, Vote,
)
from collector import selectors as collector_selectors
from collector.models import Label, Photo, PhotoStatus
from config.errors import ApiError
from training import selectors as training_selectors

logger = logging.getLogger(__name__)


# --- training selectors -------------------------------------------------------------
# What the latest training run measured, read through training.selectors. A failure there must not stop
# the daily job: the challenge is then chosen by targets and novelty waits for the next day (both logged).


def _latest_recall_by_label() -> dict[str, float] | None:
    try:
        return training_selectors.latest_recall_by_label() or None
    except Exception:
        logger.exception("training.selectors.latest_recall_by_label failed; choosing by targets instead")
        return None


def _photo_embeddings(photo_ids: list[int]) -> dict:
    try:
        return training_selectors.photo_embeddings(photo_ids) or {}
    except Exception:
        logger.exception("training.selectors.photo_embeddings failed; no novelty this time")
        return {}


# --- challenges ------------------------------------------------------------------


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

    recall = _latest_recall_by_label()
    if recall:
        def by_recall(label):
            return (float(recall.get(label.slug, 0.0)), _target_key(label), label.slug)

        label = min(candidates, key=by_recall)
        return LabelChoice(label, f"lowest recall in the latest training run ({float(recall.get(label.slug, 0.0)):.2f})")
    label = min(candidates, key=lambda l: (_target_key(l), l.slug))
    return LabelChoice(
        label,
        f"furthest below its targets ({label.approved_count} approved; prototype target "
        f"{label.effective_prototype_target}, production target {label.effective_production_target})",
    )


def _target_key(label) -> tuple[int, float]:
    approved = getattr(label, "approved_count", 0)
    if approved < label.effective_prototype_target:
        return 0, approved / label.effective_prototype_target
    return 1, approved / label.effective_production_target


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
    day = periods.challenge_date_at(now)
    challenge = Challenge.objects.filter(date=day).first()
    if challenge is None:
        choice = challenge_label_choose(day=day)
        if choice is None:
            return None
        try:
            with transaction.atomic():
                challenge = challenge_create(day=day, label=choice.label, selection_note=choice.reason)
        except IntegrityError:
            challenge = Challenge.objects.get(date=day)
    Challenge.objects.filter(pk=challenge.pk, opened_at__isnull=True).update(opened_at=now)
    challenge.refresh_from_db()
    return challenge


def challenge_entry_check(*, challenge_id, label: Label, now: dt.datetime) -> Challenge:
    """Refuse (422) an upload entering a challenge that is unknown, not open at ``now``, or for another label."""
    try:
        challenge_id = int(challenge_id)
    except (TypeError, ValueError):
        raise ApiError(422, "unknown_challenge", f"There is no challenge {challenge_id!r}.",
                       {"challenge": ["Unknown challenge."]}) from None
    challenge = Challenge.objects.select_related("label").filter(pk=challenge_id).first()
    if challenge is None:
        raise ApiError(422, "unknown_challenge", f"There is no challenge {challenge_id}.",
                       {"challenge": ["Unknown challenge."]})
    zone = periods.local_zone()
    if now < challenge.starts_at:
        when = challenge.starts_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        raise ApiError(422, "challenge_not_open", f"The challenge \u201c{challenge.title}\u201d opens at {when}; "
                       "this photo was not entered.", {"challenge": ["Not open yet."]})
    if now >= challenge.ends_at:
        when = challenge.ends_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        raise ApiError(422, "challenge_closed", f"The challenge \u201c{challenge.title}\u201d closed at {when}; "
                       "this photo was not entered.", {"challenge": ["Closed."]})
    if challenge.label_id != label.pk:
        raise ApiError(422, "challenge_wrong_label",
                       f"The challenge \u201c{challenge.title}\u201d is for {challenge.label.slug!r} photos, "
                       f"but this photo is labelled {label.slug!r}.", {"challenge": ["For another label."]})
    return challenge


# --- the ledger ---------------------------------------------------------------------


def _score_keys(entry: PointEntry) -> list[str]:
    keys = [*periods.period_keys(entry.earned_at), periods.ALL_TIME_KEY]
    if entry.challenge_id is not None:
        keys.append(periods.challenge_key(entry.challenge_id))
    return keys


def _approved_delta(entry: PointEntry) -> int:
    if entry.reason != PointReason.APPROVED:
        return 0
    return -1 if entry.reverses_id is not None else 1


def _ledger_write(entries: list[PointEntry]) -> None:
    """Insert ledger rows and move their Score rows, in the caller's transaction."""
    if not entries:
        return
    PointEntry.objects.bulk_create(entries)
    deltas: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        photos = _approved_delta(entry)
        if entry.points == 0 and photos == 0:
            continue
        for key in _score_keys(entry):
            d = deltas[(entry.volunteer_id, key)]
            d[0] += entry.points
            d[1] += photos
    _scores_add(deltas)


def _scores_add(deltas: dict[tuple[int, str], list[int]]) -> None:
    """One upsert for all deltas, in a fixed order so concurrent writers lock rows alike.

    RETURNING gives each row's new points; with the delta that tells which
    points bucket the volunteer left and entered in that period, appended to
    the rank histogram as RankBucketChange rows (inserts only: no row shared
    between volunteers is locked, so point writes never wait on each other
    across volunteers and cannot deadlock).
    """
    items = sorted((k, v) for k, v in deltas.items() if v[0] or v[1])
    if not items:
        return
    qn = connection.ops.quote_name
    table = qn(Score._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s)"] * len(items))
    params = []
    for (volunteer_id, key), (points, photos) in items:
        params += [key, volunteer_id, points, photos]
    sql = (
        f"INSERT INTO {table} ({qn('period')}, {qn('volunteer_id')}, {qn('points')}, {qn('approved_photos')}) "
        f"VALUES {values} ON CONFLICT ({qn('period')}, {qn('volunteer_id')}) DO UPDATE SET "
        f"{qn('points')} = {table}.{qn('points')} + excluded.{qn('points')}, "
        f"{qn('approved_photos')} = {table}.{qn('approved_photos')} + excluded.{qn('approved_photos')} "
        f"RETURNING {qn('period')}, {qn('volunteer_id')}, {qn('points')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    added = {(vid, key): d[0] for (vid, key), d in items}
    bucket_changes: list[RankBucketChange] = []
    for key, volunteer_id, new_points in returned:
        old_points = new_points - added[(volunteer_id, key)]
        if old_points == new_points:
            continue
        if old_points > 0:
            bucket_changes.append(RankBucketChange(period=key, points=old_points, delta=-1))
        if new_points > 0:
            bucket_changes.append(RankBucketChange(period=key, points=new_points, delta=1))
    if bucket_changes:
        RankBucketChange.objects.bulk_create(bucket_changes)


def scores_forget_user(*, user_id: int) -> None:
    """Before a user's Score rows are deleted (cascade): take them out of the rank histogram."""
    ranked = list(Score.objects.filter(volunteer_id=user_id, points__gt=0).values_list("period", "points"))
    if not ranked:
        return
    RankBucketChange.objects.bulk_create([RankBucketChange(period=k, points=p, delta=-1) for k, p in ranked])
    Score.objects.filter(volunteer_id=user_id).delete()


# An upload is validated just before its row is created; image processing in
# between may carry the creation a little past the end of the window.
_ENTRY_GRACE = dt.timedelta(minutes=10)


def _entered_challenge(photo: Photo) -> Challenge | None:
    """The challenge a photo counts toward: it was uploaded while open, and still has the challenge's label."""
    if not photo.challenge_id:
        return None
    challenge = Challenge.objects.filter(pk=photo.challenge_id).first()
    if challenge is None or challenge.label_id != photo.label_id:
        return None
    if photo.created_at is not None and not (challenge.starts_at <= photo.created_at < challenge.ends_at + _ENTRY_GRACE):
        return None
    return challenge


def _photo_targets(photo: Photo) -> tuple[dict[tuple[str, int | None], tuple[int, int | None]], Challenge | None]:
    """What the photo's owner should hold for it now: {(reason, vote id): (points, actor id)}, and its challenge."""
    if photo.status != PhotoStatus.APPROVED or photo.volunteer_id is None:
        return {}, None
    challenge = _entered_challenge(photo)
    targets: dict[tuple[str, int | None], tuple[int, int | None]] = {
        (PointReason.APPROVED, None): (settings.POINTS_PHOTO_APPROVED, photo.reviewed_by_id),
    }
    if challenge is not None:
        targets[(PointReason.CHALLENGE_BONUS, None)] = (challenge.bonus_points, None)
    feature = Feature.objects.filter(photo_id=photo.pk).values_list("featured_by_id", flat=True)[:1]
    if feature:
        targets[(PointReason.FEATURED, None)] = (settings.POINTS_FEATURED, feature[0])
    novelty = PhotoNovelty.objects.filter(photo_id=photo.pk).values_list("points", flat=True).first()
    if novelty:
        targets[(PointReason.NOVELTY, None)] = (novelty, None)
    for vote_id, voter_id in Vote.objects.filter(photo_id=photo.pk).exclude(voter_id=photo.volunteer_id).values_list("id", "voter_id"):
        targets[(PointReason.VOTE, vote_id)] = (settings.POINTS_PER_VOTE, voter_id)
    return targets, challenge


def _photo_settle(*, photo: Photo, now: dt.datetime, actor=None, note: str = "", revoke_all: bool = False) -> int:
    """Bring the ledger in line with the photo's state. The caller holds the photo's row lock.

    ``revoke_all`` takes every point of the photo back (the photo is being deleted).
    Returns the number of ledger rows written (0 when nothing changed).
    """
    targets, challenge = ({}, None) if revoke_all else _photo_targets(photo)
    challenge_id = challenge.pk if challenge else None
    active = list(PointEntry.objects.filter(photo_id=photo.pk, active=True))
    keep, take_back = set(), []
    for grant in active:
        key = (grant.reason, grant.vote_id if grant.reason == PointReason.VOTE else None)
        if key in targets and key not in keep and grant.challenge_id == challenge_id and grant.volunteer_id == photo.volunteer_id:
            keep.add(key)
        else:
            take_back.append(grant)
    entries = []
    actor_id = getattr(actor, "pk", None)
    if take_back:
        ids = [g.pk for g in take_back]
        claimed = PointEntry.objects.filter(pk__in=ids, active=True).update(active=False)
        if claimed != len(ids):  # someone settled this photo without holding its lock
            raise RuntimeError(f"ledger rows of photo {photo.pk} changed under us")
        for grant in take_back:
            entries.append(PointEntry(
                volunteer_id=grant.volunteer_id, photo_id=photo.pk, reason=grant.reason, points=-grant.points,
                earned_at=grant.earned_at, challenge_id=grant.challenge_id, vote_id=grant.vote_id, actor_id=actor_id,
                active=False, reverses=grant, note=(note or "taken back")[:200], created_at=now,
            ))
    for (reason, vote_id), (points, who) in targets.items():
        if (reason, vote_id) in keep:
            continue
        entries.append(PointEntry(
            volunteer_id=photo.volunteer_id, photo_id=photo.pk, reason=reason, points=points, earned_at=now,
            challenge_id=challenge_id, vote_id=vote_id, actor_id=who if who is not None else actor_id,
            active=True, created_at=now,
        ))
    _ledger_write(entries)
    return len(entries)


def photo_points_settle(*, photo_id: int, now: dt.datetime | None = None, actor=None, note: str = "") -> int:
    """Lock one photo and settle its points (repairs, tests, admin)."""
    now = now or timezone.now()
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None:
            return 0
        return _photo_settle(photo=photo, now=now, actor=actor, note=note)


def photo_points_revoke(*, photo_id: int, now: dt.datetime | None = None) -> int:
    """Take back every point a photo earned: it is about to be deleted (admin)."""
    now = now or timezone.now()
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None:
            return 0
        return _photo_settle(photo=photo, now=now, note="photo deleted", revoke_all=True)


def on_photo_status_changed(*, photo: Photo, old_status: str, new_status: str, old_label_id: int | None,
                            reviewer=None) -> None:
    """Receiver body for collector's photo_status_changed (inside the review transaction, photo locked)."""
    if new_status == PhotoStatus.REJECTED:
        note = "rejected after approval" if old_status == PhotoStatus.APPROVED else "rejected"
    elif new_status == PhotoStatus.WITHDRAWN:
        note = "withdrawn by the volunteer"
    elif old_label_id is not None and old_label_id != photo.label_id:
        note = "relabelled"
    else:
        note = ""
    _photo_settle(photo=photo, now=timezone.now(), actor=reviewer, note=note)


# --- votes -------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteResult:
    photo_id: int
    votes: int
    voted: bool
    changed: bool


def _photo_for_vote(*, user, photo_id: int) -> Photo:
    photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
    if photo is None or not collector_selectors.photo_can_view(user=user, photo=photo):
        raise ApiError(404, "not_found", "Not found.")
    return photo


def vote_cast(*, user, photo_id: int, now: dt.datetime | None = None) -> VoteResult:
    """Vote for someone else's approved photo; voting again changes nothing."""
    if not getattr(user, "is_authenticated", False):
        raise ApiError(401, "not_authenticated", "Sign in to vote.")
    now = now or timezone.now()
    with transaction.atomic():
        photo = _photo_for_vote(user=user, photo_id=photo_id)
        if photo.volunteer_id == user.pk:
            raise ApiError(403, "own_photo", "You cannot vote for your own photo.")
        if photo.status != PhotoStatus.APPROVED:
            raise ApiError(409, "not_approved", "Only approved photos can be voted for.")
        vote, created = Vote.objects.get_or_create(voter=user, photo=photo)
        if created:
            _photo_settle(photo=photo, now=now, actor=user)
        votes = Vote.objects.filter(photo=photo).count()
    return VoteResult(photo_id=photo.pk, votes=votes, voted=True, changed=created)


def vote_withdraw(*, user, photo_id: int, now: dt.datetime | None = None) -> VoteResult:
    """Take a vote back (its points leave the photo's owner); without a vote, nothing changes."""
    if not getattr(user, "is_authenticated", False):
        raise ApiError(401, "not_authenticated", "Sign in to vote.")
    now = now or timezone.now()
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None:
            raise ApiError(404, "not_found", "Not found.")
        vote = Vote.objects.filter(voter=user, photo=photo).first()
        if vote is None and not collector_selectors.photo_can_view(user=user, photo=photo):
            raise ApiError(404, "not_found", "Not found.")
        changed = vote is not None
        if vote is not None:
            vote.delete()
            _photo_settle(photo=photo, now=now, actor=user, note="vote taken back")
        votes = Vote.objects.filter(photo=photo).count()
    return VoteResult(photo_id=photo.pk, votes=votes, voted=False, changed=changed)


# --- features ----------------------------------------------------------------------


def photo_feature(*, photo_id: int, staff_user, on: dt.date | None = None, now: dt.datetime | None = None) -> Feature:
    """Make an approved photo a "photo of the day" (once per photo; featuring again changes nothing)."""
    if not (getattr(staff_user, "is_authenticated", False) and staff_user.is_staff):
        raise ApiError(403, "permission_denied", "Only staff can feature photos.")
    now = now or timezone.now()
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None:
            raise ApiError(404, "not_found", "Not found.")
        if photo.status != PhotoStatus.APPROVED:
            raise ApiError(409, "not_approved", "Only approved photos can be featured.")
        feature, created = Feature.objects.get_or_create(
            photo=photo, defaults={"featured_by": staff_user, "featured_on": on or periods.local_date(now)}
        )
        if created:
            _photo_settle(photo=photo, now=now, actor=staff_user)
    return feature


def photo_unfeature(*, photo_id: int, staff_user, now: dt.datetime | None = None) -> bool:
    """Remove a feature (its points are taken back). True when there was one."""
    if not (getattr(staff_user, "is_authenticated", False) and staff_user.is_staff):
        raise ApiError(403, "permission_denied", "Only staff can feature photos.")
    now = now or timezone.now()
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None:
            return False
        deleted, _ = Feature.objects.filter(photo=photo).delete()
        if deleted:
            _photo_settle(photo=photo, now=now, actor=staff_user, note="feature removed")
    return bool(deleted)


# --- novelty -----------------------------------------------------------------------


@dataclass
class NoveltyResult:
    labels_scored: int = 0
    photos_scored: int = 0
    photos_awarded: int = 0


def novelty_points(percentile: float) -> int:
    """0 below NOVELTY_PERCENTILE; above it, rising linearly to POINTS_NOVELTY_MAX for the farthest photo."""
    threshold = settings.NOVELTY_PERCENTILE
    if percentile < threshold or settings.POINTS_NOVELTY_MAX == 0:
        return 0
    share = (percentile - threshold) / (1.0 - threshold) if threshold < 1 else 1.0
    return max(1, round(settings.POINTS_NOVELTY_MAX * min(1.0, share)))


def novelty_award(*, now: dt.datetime | None = None, progress: bool = False) -> NoveltyResult:
    """Score approved photos not yet scored by their distance from their label's centre, and award the bonus.

    Needs features from training (training.selectors.photo_embeddings); does
    nothing until they exist. Each photo is scored once (PhotoNovelty is
    unique per photo, which also stops two runs from awarding twice).
    """
    import numpy as np

    now = now or timezone.now()
    result = NoveltyResult()
    approved = collector_selectors.photos_approved()
    scored = set(PhotoNovelty.objects.values_list("photo_id", flat=True))
    by_label: dict[int, list[int]] = defaultdict(list)
    for photo_id, label_id in approved.values_list("id", "label_id"):
        by_label[label_id].append(photo_id)
    label_ids = [lid for lid, ids in by_label.items() if any(pid not in scored for pid in ids)]
    iterator = label_ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(label_ids, desc="novelty", unit="label")
    for label_id in iterator:
        ids = by_label[label_id]
        if len(ids) < settings.NOVELTY_MIN_PHOTOS:
            continue
        vectors = _photo_embeddings(ids)
        have = [pid for pid in ids if pid in vectors]
        if len(have) < settings.NOVELTY_MIN_PHOTOS:
            continue
        matrix = np.asarray([np.asarray(vectors[pid], dtype=np.float64).ravel() for pid in have])
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.where(norms == 0, 1.0, norms)
        centre = matrix.mean(axis=0)
        centre = centre / (np.linalg.norm(centre) or 1.0)
        distances = 1.0 - matrix @ centre
        order = np.sort(distances)
        result.labels_scored += 1
        for pid, distance in zip(have, distances):
            if pid in scored:
                continue
            percentile = float(np.searchsorted(order, distance, side="left")) / max(1, len(have) - 1)
            percentile = min(1.0, percentile)
            points = novelty_points(percentile)
            with transaction.atomic():
                photo = Photo.objects.select_for_update().filter(pk=pid).first()
                if photo is None or photo.status != PhotoStatus.APPROVED or photo.label_id != label_id:
                    continue
                _, created = PhotoNovelty.objects.get_or_create(
                    photo=photo, defaults={"label_id": label_id, "distance": float(distance), "percentile": percentile,
                                           "compared_with": len(have), "points": points},
                )
                if created:
                    result.photos_scored += 1
                    if points:
                        result.photos_awarded += 1
                        _photo_settle(photo=photo, now=now, note="novelty")
    return result


# --- recompute ---------------------------------------------------------------------------


def scores_recompute(*, progress: bool = False, batch_size: int = 5000) -> int:
    """Rebuild every Score and RankBucket row from the ledger (the source of truth). Returns the Score rows written.

    Takes the ledger in SHARE mode on PostgreSQL (SQLite: the write
    transaction) so no points are written while it runs. PostgreSQL does it
    in one INSERT ... SELECT (seconds for a million ledger rows); other
    databases aggregate per volunteer and local day in SQL and roll up here.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {connection.ops.quote_name(PointEntry._meta.db_table)} IN SHARE MODE")
            Score.objects.all().delete()
            written = _scores_recompute_postgresql()
        else:
            written = _scores_recompute_portable(progress=progress, batch_size=batch_size)
        rank_buckets_rebuild()
    return written


def _scores_recompute_postgresql() -> int:
    qn = connection.ops.quote_name
    ledger, score = qn(PointEntry._meta.db_table), qn(Score._meta.db_table)
    sql = f"""
        INSERT INTO {score} (period, volunteer_id, points, approved_photos)
        SELECT k.key, k.volunteer_id, SUM(k.points), SUM(k.photos)
        FROM (
            SELECT e.volunteer_id, e.points, e.photos,
                   unnest(ARRAY['d' || to_char(e.day, 'YYYY-MM-DD'),
                                'w' || to_char(e.day - (EXTRACT(ISODOW FROM e.day)::int - 1), 'YYYY-MM-DD'),
                                'm' || to_char(e.day, 'YYYY-MM'),
                                %s]
                          || CASE WHEN e.challenge_id IS NULL THEN ARRAY[]::text[]
                                  ELSE ARRAY['c' || e.challenge_id::text] END) AS key
            FROM (
                SELECT volunteer_id, points, challenge_id,
                       CASE WHEN reason = %s THEN CASE WHEN reverses_id IS NULL THEN 1 ELSE -1 END ELSE 0 END AS photos,
                       (earned_at AT TIME ZONE %s)::date AS day
                FROM {ledger}
            ) e
        ) k
        GROUP BY k.key, k.volunteer_id
        HAVING SUM(k.points) <> 0 OR SUM(k.photos) <> 0
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [periods.ALL_TIME_KEY, PointReason.APPROVED, str(periods.local_zone())])
        return cursor.rowcount


def _scores_recompute_portable(*, progress: bool, batch_size: int) -> int:
    from challenges.selectors import _approved_delta as approved_delta_expr

    zone = periods.local_zone()
    totals: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    by_day = (
        PointEntry.objects.order_by().values("volunteer_id", day=TruncDate("earned_at", tzinfo=zone))
        .annotate(points=Sum("points"), photos=Sum(approved_delta_expr()))
        .values_list("volunteer_id", "day", "points", "photos")
    )
    for volunteer_id, day, points, photos in by_day.iterator(chunk_size=batch_size):
        monday = day - dt.timedelta(days=day.weekday())
        for key in (f"d{day.isoformat()}", f"w{monday.isoformat()}", f"m{day.year:04d}-{day.month:02d}",
                    periods.ALL_TIME_KEY):
            t = totals[(volunteer_id, key)]
            t[0] += points
            t[1] += photos
    by_challenge = (
        PointEntry.objects.order_by().filter(challenge__isnull=False).values("volunteer_id", "challenge_id")
        .annotate(points=Sum("points"), photos=Sum(approved_delta_expr()))
        .values_list("volunteer_id", "challenge_id", "points", "photos")
    )
    for volunteer_id, challenge_id, points, photos in by_challenge.iterator(chunk_size=batch_size):
        t = totals[(volunteer_id, periods.challenge_key(challenge_id))]
        t[0] += points
        t[1] += photos
    Score.objects.all().delete()
    rows = [Score(period=key, volunteer_id=vid, points=p, approved_photos=n) for (vid, key), (p, n) in totals.items()
            if p or n]
    chunks = range(0, len(rows), batch_size)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="scores", unit="batch")
    for start in chunks:
        Score.objects.bulk_create(rows[start:start + batch_size])
    return len(rows)


def rank_buckets_rebuild() -> int:
    """Recount the rank histogram from the Score rows (part of scores_recompute). Returns the number of buckets."""
    with transaction.atomic():
        RankBucket.objects.all().delete()
        RankBucketChange.objects.all().delete()
        buckets = (Score.objects.filter(points__gt=0).order_by().values("period", "points").annotate(n=Count("id"))
                   .values_list("period", "points", "n"))
        created = RankBucket.objects.bulk_create(
            [RankBucket(period=k, points=p, volunteers=n) for k, p, n in buckets.iterator()], batch_size=5000)
    return len(created)


_COMPACT_LOCK_KEY = 0x43484C4B  # "CHLK": one compaction at a time


def rank_buckets_compact() -> int:
    """Fold the appended RankBucketChange rows into RankBucket. Returns how many change rows were folded.

    Writers only append changes, so folding takes no lock they wait on. The
    changes are deleted and summed in one statement (DELETE ... RETURNING):
    a change committed meanwhile is either folded or left for next time,
    never lost or counted twice. Readers see both tables in one snapshot,
    so ranks are exact before, during and after. Two compactions at once
    take turns (a transaction-scoped advisory lock on PostgreSQL; SQLite
    serialises writers anyway); the second finds the rows already folded.
    """
    qn = connection.ops.quote_name
    changes, buckets = qn(RankBucketChange._meta.db_table), qn(RankBucket._meta.db_table)
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_COMPACT_LOCK_KEY])
            cursor.execute(f"DELETE FROM {changes} RETURNING {qn('period')}, {qn('points')}, {qn('delta')}")
            folded = cursor.fetchall()
            sums: dict[tuple[str, int], int] = defaultdict(int)
            for key, points, delta in folded:
                sums[(key, points)] += delta
            items = sorted((k, n) for k, n in sums.items() if n)
            for start in range(0, len(items), 1000):
                chunk = items[start:start + 1000]
                cursor.execute(
                    f"INSERT INTO {buckets} ({qn('period')}, {qn('points')}, {qn('volunteers')}) VALUES "
                    + ", ".join(["(%s, %s, %s)"] * len(chunk))
                    + f" ON CONFLICT ({qn('period')}, {qn('points')}) DO UPDATE SET "
                    f"{qn('volunteers')} = {buckets}.{qn('volunteers')} + excluded.{qn('volunteers')}",
                    [v for (key, points), n in chunk for v in (key, points, n)],
                )
        RankBucket.objects.filter(volunteers=0).delete()
    return len(folded)
