"""Environment variable readers: every setting comes through one of these, and is declared where it is read.

Each reader fails with ImproperlyConfigured naming the variable when a value
cannot be parsed, so a typo in a deployment is caught at start-up instead of
turning into odd behaviour later (healthchecks' envbool/envint habit).

Each reader also records its declaration (name, type, default, bounds, what it
means) in ``SETTINGS``, in the order config/settings.py reads them, under the
section named by the last ``section()`` call; ``declare()`` records a variable
that something else reads (deploy/run-local.sh, gunicorn, a command).
docs/reference/settings.md is rendered from ``SETTINGS`` (config.reference), so
the reference says what the code reads, once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Setting:
    """One environment variable as the reference shows it."""

    name: str
    type: str  # "string", "boolean", "integer", "number", "list", "time", "choice"
    default: str  # Markdown as the reference shows it
    help: str  # what it means, one or two sentences
    section: str
    bounds: str = ""  # "at least 1", "0 to 0.5", "one of a, b"
    read_by: str = ""  # empty: config/settings.py; else the file or command that reads it


SETTINGS: dict[str, Setting] = {}
_section = ["General"]


def section(title: str) -> None:
    """The reference section of the settings declared after this call."""
    _section[0] = title


def _shown(value) -> str:
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if value is None or value == "" or value == []:
        return "empty"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, (list, tuple)):
        return f"`{','.join(value)}`"
    return f"`{value}`"


def _bounds(minimum=None, maximum=None) -> str:
    if minimum is not None and maximum is not None:
        return f"{minimum:g} to {maximum:g}"
    if minimum is not None:
        return f"at least {minimum:g}"
    if maximum is not None:
        return f"at most {maximum:g}"
    return ""


def _record(name: str, type_: str, default, help: str | None, shown: str | None, bounds: str = "",
            read_by: str = "") -> None:
    if help is None:
        return  # an undeclared read: tests/test_settings_reference.py fails on it
    setting = Setting(name=name, type=type_, default=shown if shown is not None else _shown(default),
                      help=" ".join(help.split()), section=_section[0], bounds=bounds, read_by=read_by)
    known = SETTINGS.get(name)
    if known is not None and known != setting:
        raise ImproperlyConfigured(f"{name} is declared twice, differently: {known} and {setting}")
    SETTINGS[name] = setting


def declare(name: str, *, type: str, default, help: str, read_by: str, shown: str | None = None,
            bounds: str = "") -> None:
    """A variable read outside config/settings.py (a shell script, gunicorn's file, one command)."""
    _record(name, type, default, help, shown, bounds, read_by)


def env_str(name: str, default: str = "", *, help: str | None = None, shown: str | None = None) -> str:
    _record(name, "string", default, help, shown)
    return os.environ.get(name, default)


def env_bool(name: str, default: bool, *, help: str | None = None, shown: str | None = None) -> bool:
    _record(name, "boolean", default, help, shown)
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false/1/0), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None,
            help: str | None = None, shown: str | None = None) -> int:
    _record(name, "integer", default, help, shown, _bounds(minimum, maximum))
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None,
              help: str | None = None, shown: str | None = None) -> float:
    _record(name, "number", default, help, shown, _bounds(minimum, maximum))
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_opt_int(name: str, *, minimum: int | None = None, help: str | None = None,
                shown: str | None = None) -> int | None:
    """An integer, or None when unset or empty (the caller's own default applies)."""
    _record(name, "integer", None, help, shown, _bounds(minimum))
    return env_int(name, 0, minimum=minimum) if os.environ.get(name, "").strip() else None


def env_opt_float(name: str, *, minimum: float | None = None, maximum: float | None = None,
                  help: str | None = None, shown: str | None = None) -> float | None:
    """A number, or None when unset or empty (the caller's own default applies)."""
    _record(name, "number", None, help, shown, _bounds(minimum, maximum))
    return env_float(name, 0.0, minimum=minimum, maximum=maximum) if os.environ.get(name, "").strip() else None


def env_list(name: str, default: list[str], *, help: str | None = None, shown: str | None = None) -> list[str]:
    _record(name, "list", default, help, shown)
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_time(name: str, default: str, *, help: str | None = None, shown: str | None = None) -> tuple[int, int]:
    """An HH:MM wall-clock time, as (hour, minute)."""
    _record(name, "time", default, help, shown, "HH:MM")
    raw = os.environ.get(name, default).strip()
    try:
        hour_s, minute_s = raw.split(":")
        hour, minute = int(hour_s), int(minute_s)
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a time as HH:MM, got {raw!r}") from None
    return hour, minute


def env_choice(name: str, default: str, choices: set[str], *, help: str | None = None,
               shown: str | None = None, order: list[str] | None = None) -> str:
    """``order``: the choices as the reference lists them (sorted otherwise)."""
    _record(name, "choice", default, help, shown, "one of " + ", ".join(order or sorted(choices)))
    raw = os.environ.get(name, default).strip().lower()
    if raw not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {sorted(choices)}, got {raw!r}")
    return raw
