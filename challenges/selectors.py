"""Reads of the challenges app: today's challenge, leaderboards, galleries, points history.

Used by the API (challenges.apis), the web pages (pages.views) and the
newsletter. Nothing here writes.

Over 400 lines on purpose: one concept (what the challenges app lets others read), one reader per
answer; the leaderboard readers share their rank query, which a split by page would scatter.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field

from django.db import connection
from django.db.models import Case, Count, F, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from challenges import periods
from challenges.models import (
    Challenge, PhotoOfTheDay, PointEntry, PointReason, RankBucket, RankBucketChange, Score, Vote,
)
from collector import selectors as collector_selectors
from collector.models import Label, Photo, Volunteer, public_name_for
from training import selectors as training_selectors

logger = logging.getLogger(__name__)

# In the gallery a staff feature weighs as much as this many votes.
FEATURE_WEIGHT_IN_VOTES = 5


# --- challenges -------------------------------------------------------------


def challenge_today(*, now: dt.datetime | None = None) -> Challenge | None:
    """The challenge open at ``now`` (its window contains it), or None."""
    now = now or timezone.now()
    return (
        Challenge.objects.select_related("label")
        .filter(starts_at__lte=now, ends_at__gt=now)
        .order_by("-starts_at", "-id")
        .first()
    )


def challenge_get(*, challenge_id: int) -> Challenge | None:
    return Challenge.objects.select_related("label").filter(pk=challenge_id).first()


def challenge_list(*, past_days: int = 30, upcoming_days: int = 7, now: dt.datetime | None = None) -> QuerySet[Challenge]:
    """Challenges from ``past_days`` ago to ``upcoming_days`` ahead (challenge dates in TIME_ZONE), newest first."""
    now = now or timezone.now()
    today = periods.challenge_date_at(now)
    return (
        Challenge.objects.select_related("label")
        .filter(date__gte=today - dt.timedelta(days=past_days), date__lte=today + dt.timedelta(days=upcoming_days))
        .order_by("-date")
    )


# --- which labels are needed most ---------------------------------------------


def latest_recall_by_label() -> dict[str, float] | None:
    """What the latest training run measured per label, or None. A failure there must not stop the daily
    job or the home page: labels are then ordered by targets (logged)."""
    try:
        return training_selectors.latest_recall_by_label() or None
    except Exception:
        logger.exception("training.selectors.latest_recall_by_label failed; choosing by targets instead")
        return None


def label_need_key(label: Label, recall: dict[str, float] | None) -> tuple:
    """Sort key, most needed first: the one rule the daily challenge is chosen by and the home page lists by.

    With a training run: lowest recall first (a label the run did not know counts as 0). Always then:
    furthest below the targets (under the prototype target first, by the share of it reached, then by the
    share of the production target reached); ties go to the alphabetically first slug. ``label`` carries
    ``approved_count`` (collector.selectors.label_list_active)."""
    approved = getattr(label, "approved_count", 0)
    if approved < label.effective_prototype_target:
        target = (0, approved / label.effective_prototype_target)
    else:
        target = (1, approved / label.effective_production_target)
    by_recall = (float(recall.get(label.slug, 0.0)),) if recall else ()
    return (*by_recall, target, label.slug)


def labels_need_ranking(*, labels: list[Label]) -> dict[str, dict]:
    """{slug: {rank, recall, confused_with, hint}} for these labels, most needed first by label_need_key; the
    hint says why in a volunteer's words ("The model mixes up Tulip and Rose: a tulip that looks like a rose
    helps most."). Confusions are the model in service's on its test split (training.selectors)."""
    recall = latest_recall_by_label()
    try:
        confusions = training_selectors.latest_confusions()
    except Exception:
        logger.exception("training.selectors.latest_confusions failed; ranking without confusions")
        confusions = {}
    names = {label.slug: label.name for label in labels}
    ranked = sorted(labels, key=lambda label: label_need_key(label, recall))
    out = {}
    for rank, label in enumerate(ranked, start=1):
        other = confusions.get(label.slug)
        approved = getattr(label, "approved_count", 0)
        if other and other[0] in names:
            hint = (f"The model mixes up {label.name} and {names[other[0]]}: "
                    f"a {label.name.lower()} that looks like a {names[other[0]].lower()} helps most.")
        elif recall is not None and label.slug in recall:
            hint = f"The model recognises {round(100 * recall[label.slug])} % of these."
        elif approved < label.effective_prototype_target:
            hint = f"{approved} of {label.effective_prototype_target} photos for a first model."
        else:
            hint = f"{approved} of {label.effective_production_target} photos for a good model."
        out[label.slug] = {"rank": rank, "recall": recall.get(label.slug) if recall else None,
                           "confused_with": other[0] if other and other[0] in names else None, "hint": hint}
    return out


def stumpers(*, since: dt.datetime, until: dt.datetime, limit: int = 1) -> list[dict]:
    """The volunteers whose approved photos stumped the model most in [since, until) (issue 19): active
    STUMPED grants earned then, most first (ties: the earlier volunteer), each with one example
    ({photo_id, label, thought}: the photo's label and what the server's model took it for)."""
    grants = PointEntry.objects.filter(reason=PointReason.STUMPED, active=True, earned_at__gte=since,
                                       earned_at__lt=until)
    top = (grants.values("volunteer_id").annotate(photos=Count("id"), points=Sum("points"))
           .order_by("-photos", "volunteer_id")[:limit])
    out = []
    for row in top:
        grant = grants.filter(volunteer_id=row["volunteer_id"]).select_related("photo__label").order_by("-earned_at").first()
        prediction = collector_selectors.photo_server_prediction(photo_id=grant.photo_id)
        thought = collector_selectors.label_get(slug=prediction.label) if prediction else None
        out.append({"volunteer_id": row["volunteer_id"], "photos": row["photos"], "points": row["points"],
                    "example": {"photo_id": grant.photo_id, "label": grant.photo.label.name,
                                "thought": thought.name if thought else (prediction.label if prediction else "")}})
    return out


def labels_most_needed() -> list[Label]:
    """Active labels, the one the model needs most first (each with ``approved_count``)."""
    recall = latest_recall_by_label()
    return sorted(collector_selectors.label_list_active(), key=lambda label: label_need_key(label, recall))


# --- leaderboards -----------------------------------------------------------


@dataclass
class LeaderboardRow:
    rank: int | None  # None: the viewer has no points in this period
    display_name: str
    points: int
    approved_photos: int
    volunteer_id: int  # the user id
    is_viewer: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LeaderboardPage:
    period: str  # day | week | month | all | challenge
    period_key: str
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    challenge: Challenge | None
    rows: list[LeaderboardRow]
    total: int
    offset: int
    limit: int
    own_row: LeaderboardRow | None = None
    extra: dict = field(default_factory=dict)


def _ranking_order() -> list[str]:
    # Ties broken the same way every time: more approved photos first, then
    # the volunteer who joined first (lower user id).
    return ["-points", "-approved_photos", "volunteer_id"]


def _names_for(user_ids) -> dict[int, Volunteer]:
    return collector_selectors.volunteers_by_user(user_ids=user_ids)


def _public_name(volunteer: Volunteer | None, user_id: int) -> str:
    # An account without a volunteer profile gets the same "Volunteer #<user id>" as one without consent.
    return volunteer.public_name if volunteer is not None else public_name_for(user_id)


def period_resolve(*, period: str, challenge_id: int | None = None, now: dt.datetime | None = None):
    """(kind, key, start, end, challenge) for a leaderboard request.

    ValueError for an unknown period, LookupError for an unknown challenge."""
    now = now or timezone.now()
    if challenge_id is not None:
        challenge = challenge_get(challenge_id=challenge_id)
        if challenge is None:
            raise LookupError(f"There is no challenge {challenge_id}.")
        return "challenge", periods.challenge_key(challenge.pk), challenge.starts_at, challenge.ends_at, challenge
    p = periods.period_at(period, now)
    return p.kind, p.key, p.start, p.end, None


def leaderboard(
    *,
    period: str = "day",
    challenge_id: int | None = None,
    offset: int = 0,
    limit: int = 50,
    viewer=None,
    now: dt.datetime | None = None,
) -> LeaderboardPage:
    """One page of a leaderboard from the pre-aggregated Score rows.

    ``period`` is day, week or month (the one containing ``now`` in
    TIME_ZONE) or all; a ``challenge_id`` selects that challenge's board
    instead. Only volunteers with points > 0 are ranked. ``own_row`` is the
    viewer's row wherever they rank (rank None with 0 points when they have
    none). Raises ValueError for an unknown period, LookupError for an
    unknown challenge.
    """
    kind, key, start, end, challenge = period_resolve(period=period, challenge_id=challenge_id, now=now)
    offset, limit = max(0, int(offset)), max(1, int(limit))
    # One query for the page and its names (LEFT JOIN user -> volunteer profile),
    # served by the rank index; the size is the rank histogram's sum, not COUNT(*).
    total = _ranked_total(key)
    # A page past the end is empty without asking: an offset from ?page=9223372036854775807
    # would overflow the database's integer.
    page = [] if offset >= total else list(
        Score.objects.filter(period=key, points__gt=0)
        .order_by(*_ranking_order())
        .values_list("volunteer_id", "points", "approved_photos", "volunteer__volunteer__id",
                     "volunteer__volunteer__display_name", "volunteer__volunteer__consent_public_credit")
        [offset:offset + limit]
    )
    viewer_id = viewer.pk if viewer is not None and getattr(viewer, "is_authenticated", False) else None
    rows = [
        LeaderboardRow(rank=offset + i + 1, display_name=_name(uid, vol_id, name, consent), points=points,
                       approved_photos=photos, volunteer_id=uid, is_viewer=uid == viewer_id)
        for i, (uid, points, photos, vol_id, name, consent) in enumerate(page)
    ]
    own = None
    if viewer_id is not None:
        own = next((r for r in rows if r.is_viewer), None)
        if own is None:
            own = _own_row(key=key, viewer_id=viewer_id)
    return LeaderboardPage(kind, key, start, end, challenge, rows, total, offset, limit, own)


def _ranked_total(key: str) -> int:
    """Volunteers with points > 0 in a period: the histogram's buckets plus its unfolded changes."""
    qn = connection.ops.quote_name
    buckets, changes = qn(RankBucket._meta.db_table), qn(RankBucketChange._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE((SELECT SUM({qn('volunteers')}) FROM {buckets} WHERE {qn('period')} = %s), 0)"
            f" + COALESCE((SELECT SUM({qn('delta')}) FROM {changes} WHERE {qn('period')} = %s), 0)",
            [key, key],
        )
        return int(cursor.fetchone()[0])


def _name(user_id: int, volunteer_id: int | None, display_name: str | None, consent: bool | None) -> str:
    # Joined columns (`volunteer_id` only says whether there is a profile) through the one rule.
    return public_name_for(user_id, display_name=display_name if volunteer_id is not None else None,
                           consent_public_credit=bool(consent))


def _own_row(*, key: str, viewer_id: int) -> LeaderboardRow:
    """The viewer's row and rank in one round trip: volunteers strictly ahead in the ranking order.

    Those with more points come from the points histogram (RankBucket plus
    unfolded RankBucketChange rows), one row per distinct score; ties on
    points are counted on the rank index within that one points value."""
    qn = connection.ops.quote_name
    score = qn(Score._meta.db_table)
    buckets, changes = qn(RankBucket._meta.db_table), qn(RankBucketChange._meta.db_table)
    period, points, photos, vid = qn("period"), qn("points"), qn("approved_photos"), qn("volunteer_id")
    sql = (
        f"SELECT s.{points}, s.{photos}, "
        # volunteers with more points: the histogram (folded buckets + changes not folded yet)
        f"COALESCE((SELECT SUM(b.{qn('volunteers')}) FROM {buckets} b WHERE b.{period} = s.{period} AND b.{points} > s.{points}), 0)"
        f" + COALESCE((SELECT SUM(c.{qn('delta')}) FROM {changes} c WHERE c.{period} = s.{period} AND c.{points} > s.{points}), 0)"
        # ties on points: the rank index, only within this points value
        f" + (SELECT COUNT(*) FROM {score} a WHERE a.{period} = s.{period} AND a.{points} = s.{points}"
        f" AND a.{photos} > s.{photos})"
        f" + (SELECT COUNT(*) FROM {score} a WHERE a.{period} = s.{period} AND a.{points} = s.{points}"
        f" AND a.{photos} = s.{photos} AND a.{vid} < s.{vid}) "
        f"FROM {score} s WHERE s.{period} = %s AND s.{vid} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, viewer_id])
        mine = cursor.fetchone()
    profile = collector_selectors.volunteer_profile(user_id=viewer_id)
    name = _name(viewer_id, *profile)
    if mine is None or mine[0] <= 0:
        return LeaderboardRow(rank=None, display_name=name, points=max(0, mine[0]) if mine else 0,
                              approved_photos=mine[1] if mine else 0, volunteer_id=viewer_id, is_viewer=True)
    points, photos, ahead = mine
    return LeaderboardRow(rank=ahead + 1, display_name=name, points=points, approved_photos=photos,
                          volunteer_id=viewer_id, is_viewer=True)


def ledger_scores(*, period: str = "day", challenge_id: int | None = None, now: dt.datetime | None = None) -> list[tuple[int, int, int]]:
    """The whole leaderboard as a plain aggregate over the ledger: [(user id, points, approved photos)], ranked.

    No pre-aggregation: the reference the Score rows are checked against (tests,
    bench/leaderboard.py baseline) and what ``scores_recompute`` rebuilds from.
    """
    kind, key, start, end, challenge = period_resolve(period=period, challenge_id=challenge_id, now=now)
    qs = PointEntry.objects.all()
    if challenge is not None:
        qs = qs.filter(challenge_id=challenge.pk)
    elif start is not None:
        qs = qs.filter(earned_at__gte=start, earned_at__lt=end)
    rows = (
        qs.values("volunteer_id")
        .annotate(points=Sum("points"), approved_photos=Sum(PointEntry.approved_photos_delta_expression()))
        .filter(points__gt=0)
        .order_by("-points", "-approved_photos", "volunteer_id")
        .values_list("volunteer_id", "points", "approved_photos")
    )
    return [tuple(r) for r in rows]


# --- points history -----------------------------------------------------------


def points_history(*, user, limit: int = 100) -> list[PointEntry]:
    """The user's ledger rows, newest first (photo and challenge attached), for /me/."""
    return list(
        PointEntry.objects.filter(volunteer=user)
        .select_related("photo__label", "challenge")
        .order_by("-created_at", "-id")[:limit]
    )


def points_total(*, user) -> int:
    row = Score.objects.filter(period=periods.ALL_TIME_KEY, volunteer=user).values_list("points", flat=True).first()
    return row or 0


# --- votes, features, galleries -------------------------------------------------


def photo_vote_counts(photo_ids) -> dict[int, int]:
    ids = list(photo_ids)
    counts = dict(Vote.objects.filter(photo_id__in=ids).values("photo_id").annotate(n=Count("id")).values_list("photo_id", "n"))
    return {pid: counts.get(pid, 0) for pid in ids}


def user_voted(user, photo_ids) -> set[int]:
    if user is None or not getattr(user, "is_authenticated", False):
        return set()
    return set(Vote.objects.filter(voter=user, photo_id__in=list(photo_ids)).values_list("photo_id", flat=True))


@dataclass
class GalleryPhoto:
    photo_id: int
    label_slug: str
    label_name: str
    credit: str  # the volunteer's public name
    volunteer_id: int | None
    votes: int
    featured: bool
    featured_on: dt.date | None
    approved_at: dt.datetime | None
    challenge_id: int | None
    thumbnail_url: str

    def as_dict(self) -> dict:
        return asdict(self)


def _gallery(qs, names: dict[int, Volunteer]) -> list[GalleryPhoto]:
    out = []
    for p in qs:
        out.append(GalleryPhoto(
            photo_id=p.pk, label_slug=p.label.slug, label_name=p.label.name,
            credit=_public_name(names.get(p.volunteer_id), p.volunteer_id) if p.volunteer_id else "A former volunteer",
            volunteer_id=p.volunteer_id, votes=p.vote_count, featured=p.featured_on is not None,
            featured_on=p.featured_on, approved_at=p.approved_at, challenge_id=p.challenge_id,
            thumbnail_url=p.thumbnail_url,
        ))
    return out


def _annotated_photos(public_only: bool) -> QuerySet[Photo]:
    votes = Vote.objects.filter(photo_id=OuterRef("pk")).order_by().values("photo_id").annotate(n=Count("id")).values("n")
    feature = PhotoOfTheDay.objects.filter(photo_id=OuterRef("pk")).values("featured_on")[:1]
    qs = collector_selectors.photos_public() if public_only else collector_selectors.photos_approved()
    return qs.annotate(
        vote_count=Coalesce(Subquery(votes, output_field=IntegerField()), Value(0)),
        featured_on=Subquery(feature),
    )


def best_photos(
    *, since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int = 20, public_only: bool = True
) -> list[GalleryPhoto]:
    """Approved photos ranked by votes plus staff features (a feature counts as FEATURE_WEIGHT_IN_VOTES votes).

    ``since``/``until`` bound the approval time. ``public_only`` keeps only
    photos whose volunteers consented to public credit (what public pages may show).
    """
    qs = _annotated_photos(public_only)
    if since is not None:
        qs = qs.filter(approved_at__gte=since)
    if until is not None:
        qs = qs.filter(approved_at__lt=until)
    feature_weight = Case(When(featured_on__isnull=False, then=Value(FEATURE_WEIGHT_IN_VOTES)), default=Value(0),
                          output_field=IntegerField())
    qs = qs.annotate(gallery_score=F("vote_count") + feature_weight).order_by("-gallery_score", "-approved_at", "-id")[:limit]
    photos = list(qs)
    return _gallery(photos, _names_for({p.volunteer_id for p in photos if p.volunteer_id}))


def featured_photos(*, limit: int = 6, public_only: bool = True) -> list[GalleryPhoto]:
    """The latest photos of the day, newest first."""
    qs = _annotated_photos(public_only).filter(featured_on__isnull=False).order_by("-featured_on", "-id")[:limit]
    photos = list(qs)
    return _gallery(photos, _names_for({p.volunteer_id for p in photos if p.volunteer_id}))


@dataclass
class ChallengeResult:
    challenge: Challenge
    winners: list[LeaderboardRow]
    entries: int  # approved photos entered


def challenge_winners(*, since, until, top: int = 3) -> list[ChallengeResult]:
    """Challenges dated from ``since`` up to ``until`` (dates, or datetimes read in TIME_ZONE) with their top volunteers."""
    if isinstance(since, dt.datetime):
        since = periods.local_date(since)
    if isinstance(until, dt.datetime):
        until = periods.local_date(until)
    results = []
    for challenge in Challenge.objects.select_related("label").filter(date__gte=since, date__lte=until).order_by("date"):
        page = leaderboard(challenge_id=challenge.pk, limit=top)
        entries = Score.objects.filter(period=periods.challenge_key(challenge.pk)).aggregate(n=Sum("approved_photos"))["n"] or 0
        results.append(ChallengeResult(challenge, page.rows, entries))
    return results


__all__ = [
    "latest_recall_by_label", "label_need_key", "labels_most_needed",
    "challenge_today", "challenge_get", "challenge_list", "leaderboard", "ledger_scores", "points_history",
    "points_total", "photo_vote_counts", "user_voted", "best_photos", "featured_photos", "challenge_winners",
    "LeaderboardPage", "LeaderboardRow", "GalleryPhoto", "ChallengeResult",
]
