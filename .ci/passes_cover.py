"""Fail when a collected test passed in neither of CI's two passes (.ci/run).

The PostgreSQL pass runs the tests that reach a database (`-m "not no_database"`), the SQLite pass the
`database` ones and those that reach none (`-m "database or no_database"`; marks set by tests/conftest.py):
a test that one pass leaves out and the other skips (a skip for one vendor, a missing tool) would
otherwise be dropped from both without anyone noticing.

    python .ci/passes_cover.py COLLECTED OUTCOMES...

COLLECTED: `pytest --collect-only -q` output; OUTCOMES: the files each pass wrote with
CROWDLENS_TEST_OUTCOMES set (one "outcome<TAB>node id" line per test phase that ended it).
"""

from __future__ import annotations

import sys
from pathlib import Path


def collected_ids(text: str) -> list[str]:
    """Node ids, once each (a warnings summary may name a test again)."""
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if "::" in line and not line.startswith(" ")))


def outcomes(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        outcome, _, nodeid = line.partition("\t")
        if nodeid:
            found.setdefault(without_group(nodeid), set()).add(outcome)
    return found


def without_group(nodeid: str) -> str:
    """The node id without the "@group" pytest-xdist's --dist loadgroup appends (an "@" in a parameter stays)."""
    head, at, group = nodeid.rpartition("@")
    return head if at and "]" not in group else nodeid


def uncovered(collected: list[str], passes: list[dict[str, set[str]]]) -> list[str]:
    """The collected tests that passed in no pass, each with what happened to it in each."""
    missing = []
    for nodeid in collected:
        seen = [p.get(nodeid, {"not run"}) for p in passes]
        if not any(s == {"passed"} for s in seen):
            missing.append(f"{nodeid}: " + "; ".join("/".join(sorted(s)) for s in seen))
    return missing


def main(argv: list[str]) -> int:
    collected = collected_ids(Path(argv[0]).read_text())
    passes = [outcomes(Path(name).read_text()) for name in argv[1:]]
    missing = uncovered(collected, passes)
    for line in missing:
        print(f"not covered: {line}")
    per_pass = ", ".join(f"{sum(p.get(n) == {'passed'} for n in collected)} in pass {i}" for i, p in enumerate(passes, 1))
    print(f"{len(collected) - len(missing)} of {len(collected)} collected tests passed in a pass ({per_pass}).")
    return 1 if missing or not collected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
