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

Where a value comes from: the settings file named by ``CROWDLENS_ENV_FILE`` when one is named
(systemd's EnvironmentFile format: ``NAME=value`` lines), then the process environment, then the
default. The file wins, as systemd's EnvironmentFile= wins over Environment=: the file is the
installation's configuration, and a stale copy of it in a long-running process's environment (a
systemd unit that also loads it with EnvironmentFile=) must not shadow an edit. The file is read
afresh by every process when its settings load, and never copied into ``os.environ``: a training run
the scheduler starts (``manage.py train --queued-only``, a new process) sees the file as it is when
the run starts, with no restart of the scheduler (docs/decisions.md, "The settings file").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
# How each setting read by config/settings.py turns a raw value into its value (raising ImproperlyConfigured),
# kept so a page can check what the file says now without loading the settings again (`current`).
_PARSERS: dict[str, Callable[[str, str], object]] = {}

ENV_FILE_VARIABLE = "CROWDLENS_ENV_FILE"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvFileError(ImproperlyConfigured):
    """The settings file is missing or has a line that is not NAME=value."""


def env_file_path() -> Path | None:
    """The settings file this process reads, or None (``CROWDLENS_ENV_FILE`` unset or empty)."""
    raw = os.environ.get(ENV_FILE_VARIABLE, "").strip()
    return Path(raw).expanduser() if raw else None


def parse_env_file(text: str, where: str) -> dict[str, str]:
    """``NAME=value`` lines as systemd's EnvironmentFile= reads them: blank lines and lines starting with
    ``#`` or ``;`` are skipped; space around the name and the value is dropped; a value wholly in double
    quotes loses them and its backslash escapes (``\\"``, ``\\\\``), one in single quotes is taken
    literally; a line ending in a backslash goes on on the next line. No ``export``, no ``$VARIABLE``
    expansion. Anything else fails, naming the file and the line (systemd would only warn)."""
    values: dict[str, str] = {}
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        start = number + 1
        line = lines[number]
        number += 1
        if line.strip()[:1] in ("#", ";"):
            continue
        while line.endswith("\\") and number < len(lines):
            line = line[:-1] + lines[number]
            number += 1
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        name, equals, value = stripped.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not _NAME.fullmatch(name):
            raise EnvFileError(f"{where}, line {start}: expected NAME=value, got {stripped[:80]!r}")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        values[name] = value
    return values


_file_cache: dict[str, tuple[str, dict[str, str]]] = {}  # path -> (text, values): parsed once per content


def env_file_values() -> dict[str, str]:
    """What the settings file says now ({} without one): read on every call (a few microseconds; an edit
    shows at once, whatever the file system's timestamp granularity), parsed again when its text changed."""
    path = env_file_path()
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvFileError(f"{ENV_FILE_VARIABLE}={str(path)!r}: cannot read the settings file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise EnvFileError(f"{ENV_FILE_VARIABLE}={str(path)!r}: the settings file is not UTF-8 text") from None
    cached = _file_cache.get(str(path))
    if cached is None or cached[0] != text:
        cached = _file_cache[str(path)] = (text, parse_env_file(text, str(path)))
    return cached[1]


def _lookup(name: str) -> tuple[str | None, str]:
    """(raw value or None, where it came from as an error message ends: "" or " (in FILE)")."""
    from_file = env_file_values()
    if name in from_file:
        return from_file[name], f" (in {env_file_path()})"
    return os.environ.get(name), ""


@dataclass(frozen=True)
class Current:
    """One setting as a process starting now would read it (for the admin's "start a run" page)."""

    name: str
    value: str  # as written, or "set (hidden)" for a secret; the reference's default when unset
    source: str  # "settings file", "environment" or "default"
    error: str = ""  # what the setting's reader would refuse: a process starting now would fail


_SECRET = re.compile(r"SECRET|PASSWORD|SALT|TOKEN|_KEY\b|KEY_ID")


def current(prefix: str) -> list[Current]:
    """Every declared setting whose name starts with ``prefix``, as read now: from the settings file (read
    afresh), this process's environment, or the default; each set value checked by its own reader."""
    from_file = env_file_values()
    rows = []
    for name, setting in SETTINGS.items():
        if not name.startswith(prefix) or setting.read_by:
            continue
        if name in from_file:
            raw, source, where = from_file[name], "settings file", f" (in {env_file_path()})"
        elif name in os.environ:
            raw, source, where = os.environ[name], "environment", ""
        else:
            rows.append(Current(name, setting.default.replace("`", ""), "default"))
            continue
        error = ""
        parse = _PARSERS.get(name)
        if parse is not None:
            try:
                parse(raw, where)
            except ImproperlyConfigured as exc:
                error = str(exc)
        shown = "set (hidden)" if _SECRET.search(name) and raw else raw
        rows.append(Current(name, shown, source, error))
    return rows


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


def _read(name: str, parse: Callable[[str, str], object], default):
    """``parse(raw, where)`` of the value read now, or ``default`` when the variable is unset; ``parse`` is
    kept for `current`."""
    _PARSERS[name] = parse
    raw, where = _lookup(name)
    return default if raw is None else parse(raw, where)


def env_str(name: str, default: str = "", *, help: str | None = None, shown: str | None = None) -> str:
    _record(name, "string", default, help, shown)
    return _read(name, lambda raw, where: raw, default)


def _parse_bool(name: str, raw: str, where: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false/1/0), got {raw!r}{where}")


def env_bool(name: str, default: bool, *, help: str | None = None, shown: str | None = None) -> bool:
    _record(name, "boolean", default, help, shown)
    return _read(name, lambda raw, where: _parse_bool(name, raw, where), default)


def _parse_number(name: str, raw: str, where: str, kind: type, default, minimum, maximum):
    if raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        article = "an integer" if kind is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {article}, got {raw!r}{where}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}{where}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}{where}")
    return value


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None,
            help: str | None = None, shown: str | None = None) -> int:
    _record(name, "integer", default, help, shown, _bounds(minimum, maximum))
    return _read(name, lambda raw, where: _parse_number(name, raw, where, int, default, minimum, maximum), default)


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None,
              help: str | None = None, shown: str | None = None) -> float:
    _record(name, "number", default, help, shown, _bounds(minimum, maximum))
    return _read(name, lambda raw, where: _parse_number(name, raw, where, float, default, minimum, maximum), default)


def env_opt_int(name: str, *, minimum: int | None = None, help: str | None = None,
                shown: str | None = None) -> int | None:
    """An integer, or None when unset or empty (the caller's own default applies)."""
    _record(name, "integer", None, help, shown, _bounds(minimum))
    return _read(name, lambda raw, where: _parse_number(name, raw, where, int, None, minimum, None), None)


def env_opt_float(name: str, *, minimum: float | None = None, maximum: float | None = None,
                  help: str | None = None, shown: str | None = None) -> float | None:
    """A number, or None when unset or empty (the caller's own default applies)."""
    _record(name, "number", None, help, shown, _bounds(minimum, maximum))
    return _read(name, lambda raw, where: _parse_number(name, raw, where, float, None, minimum, maximum), None)


def env_list(name: str, default: list[str], *, help: str | None = None, shown: str | None = None) -> list[str]:
    _record(name, "list", default, help, shown)
    return _read(name, lambda raw, where: [part.strip() for part in raw.split(",") if part.strip()], default)


def _parse_time(name: str, raw: str, where: str) -> tuple[int, int]:
    try:
        hour_s, minute_s = raw.strip().split(":")
        hour, minute = int(hour_s), int(minute_s)
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a time as HH:MM, got {raw.strip()!r}{where}") from None
    return hour, minute


def env_time(name: str, default: str, *, help: str | None = None, shown: str | None = None) -> tuple[int, int]:
    """An HH:MM wall-clock time, as (hour, minute)."""
    _record(name, "time", default, help, shown, "HH:MM")
    parse = lambda raw, where: _parse_time(name, raw, where)  # noqa: E731
    return _read(name, parse, parse(default, ""))


def _parse_choice(name: str, raw: str, where: str, choices: set[str]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {sorted(choices)}, got {value!r}{where}")
    return value


def env_choice(name: str, default: str, choices: set[str], *, help: str | None = None,
               shown: str | None = None, order: list[str] | None = None) -> str:
    """``order``: the choices as the reference lists them (sorted otherwise)."""
    _record(name, "choice", default, help, shown, "one of " + ", ".join(order or sorted(choices)))
    parse = lambda raw, where: _parse_choice(name, raw, where, choices)  # noqa: E731
    return _read(name, parse, parse(default, ""))
