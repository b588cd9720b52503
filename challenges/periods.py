"""Calendar arithmetic in TIME_ZONE: challenge windows and leaderboard periods.

Every boundary is a wall-clock time in TIME_ZONE turned into an aware
datetime with zoneinfo, so a day with a DST change lasts 23 or 25 hours and
the boundaries still fall on local midnight (or CHALLENGE_ROTATE_AT).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings

PERIODS = ("day", "week", "month", "all")
ALL_TIME_KEY = "all"


def local_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def local_midnight(day: dt.date) -> dt.datetime:
    return wall_clock(day, dt.time(0, 0))


def wall_clock(day: dt.date, at: dt.time) -> dt.datetime:
    """The aware instant at which clocks in TIME_ZONE show ``at`` on ``day``.

    A wall time skipped by a DST jump (02:30 on spring-forward night) maps to
    the instant after the jump; an ambiguous one to its first occurrence.
    """
    # PEP 495: fold=0 reads a skipped time with the offset before the jump
    # (an instant after the gap) and an ambiguous time as its first occurrence.
    # Returned in UTC: Python compares and subtracts two datetimes sharing one
    # tzinfo by wall clock, which is wrong across a DST change.
    return dt.datetime.combine(day, at).replace(tzinfo=local_zone(), fold=0).astimezone(dt.timezone.utc)


def local_date(instant: dt.datetime) -> dt.date:
    return instant.astimezone(local_zone()).date()


def rotate_time() -> dt.time:
    hour, minute = settings.CHALLENGE_ROTATE_AT
    return dt.time(hour, minute)


def challenge_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Default start and end of the challenge of ``day``: CHALLENGE_ROTATE_AT to the same time next day."""
    at = rotate_time()
    return wall_clock(day, at), wall_clock(day + dt.timedelta(days=1), at)


def challenge_date_at(instant: dt.datetime) -> dt.date:
    """The challenge day an instant falls in (before CHALLENGE_ROTATE_AT it is still yesterday's)."""
    day = local_date(instant)
    start, _ = challenge_window(day)
    return day if instant >= start else day - dt.timedelta(days=1)


@dataclass(frozen=True)
class Period:
    kind: str  # day | week | month | all
    key: str
    start: dt.datetime | None  # None for all time
    end: dt.datetime | None


def period_keys(instant: dt.datetime) -> tuple[str, str, str]:
    """Keys of the day, week (Monday start) and month an instant counts in."""
    day = local_date(instant)
    monday = day - dt.timedelta(days=day.weekday())
    return f"d{day.isoformat()}", f"w{monday.isoformat()}", f"m{day.year:04d}-{day.month:02d}"


def challenge_key(challenge_id: int) -> str:
    return f"c{challenge_id}"


def period_at(kind: str, instant: dt.datetime) -> Period:
    """The period of ``kind`` containing ``instant``, with its boundaries in TIME_ZONE."""
    if kind == "all":
        return Period("all", ALL_TIME_KEY, None, None)
    day = local_date(instant)
    if kind == "day":
        first, after = day, day + dt.timedelta(days=1)
        key = f"d{day.isoformat()}"
    elif kind == "week":
        first = day - dt.timedelta(days=day.weekday())
        after = first + dt.timedelta(days=7)
        key = f"w{first.isoformat()}"
    elif kind == "month":
        first = day.replace(day=1)
        after = (first + dt.timedelta(days=32)).replace(day=1)
        key = f"m{first.year:04d}-{first.month:02d}"
    else:
        raise ValueError(f"Unknown period {kind!r}; expected one of {PERIODS}")
    return Period(kind, key, local_midnight(first), local_midnight(after))
