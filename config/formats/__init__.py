"""One way to write dates and times in the admin (FORMAT_MODULE_PATH points here).

Django's English default, "Dec. 4, 2026, 11:24 p.m.", is long (it pushes admin tables past the screen)
and reads differently from the hand-formatted times in run logs and decisions. Every date the admin shows
(list columns, read-only fields, the review queue) uses ``en/formats.py``; Python code that builds text with
a time in it calls ``datetime_display`` so it reads the same.
"""

from __future__ import annotations

import datetime as dt

from django.utils import formats, timezone


def datetime_display(value: dt.datetime | str | None) -> str:
    """A datetime (or an ISO 8601 string, as stored in JSON fields) in DATETIME_FORMAT, local time."""
    if value in (None, ""):
        return "-"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return formats.date_format(value, "DATETIME_FORMAT")
