"""Scores and the rank histogram: the pre-aggregated leaderboards kept in step with the ledger (raw SQL).

Each ledger row moves the Score rows of its periods in the same transaction
with one ``INSERT ... ON CONFLICT DO UPDATE SET points = points +
excluded.points`` statement, keys sorted so that two transactions always lock
score rows in the same order (no deadlocks). The rank histogram (RankBucket:
how many volunteers hold each points value in a period) gets appended
RankBucketChange rows and is folded by ``rank_buckets_compact``. Both can be
rebuilt from the ledger, the source of truth (``scores_recompute``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from challenges import periods
from challenges.models import PointEntry, PointReason, RankBucket, RankBucketChange, Score


def scores_add(deltas: dict[tuple[int, str], list[int]]) -> None:
    """Add {(user id, period key): [points, approved photos]} to the Score rows, in the caller's transaction.

    One upsert for all deltas, in a fixed order so concurrent writers lock rows alike.
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
    zone = periods.local_zone()
    totals: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    by_day = (
        PointEntry.objects.order_by().values("volunteer_id", day=TruncDate("earned_at", tzinfo=zone))
        .annotate(points=Sum("points"), photos=Sum(PointEntry.approved_photos_delta_expression()))
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
        .annotate(points=Sum("points"), photos=Sum(PointEntry.approved_photos_delta_expression()))
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
        from config.progress import progress_bar  # a bar at a terminal, a line every few seconds in a log

        chunks = progress_bar(chunks, desc="scores", unit="batch")
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
