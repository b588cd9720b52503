"""README.md and docs/ render as a reader sees them: tables intact, links that lead somewhere.

Rendered with markdown-it-py in CommonMark mode with GFM tables, as GitHub and
most viewers do. A `|` inside a code span still splits a table cell there
(GFM's rule), so a cell count is taken from the source line with the same rule.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]

_md = MarkdownIt("commonmark").enable("table")


def _cells(line: str) -> int:
    """Cells in a GFM table row: unescaped pipes split, leading and trailing ones don't count."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return len(re.split(r"(?<!\\)\|", body))


def _tables(path: Path):
    """(header cell count, [(line number, source line)]) for every table in the file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for token in _md.parse("\n".join(lines)):
        if token.type == "table_open":
            start, end = token.map
            yield [(n + 1, lines[n]) for n in range(start, end)]


def _table_like_lines_outside_tables(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    covered: set[int] = set()
    for token in _md.parse("\n".join(lines)):
        if token.type in ("table_open", "fence", "code_block") and token.map:
            covered.update(range(*token.map))
    return [(n + 1, line) for n, line in enumerate(lines) if line.lstrip().startswith("|") and n not in covered]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_row_renders_as_a_row_of_its_table(path):
    stray = _table_like_lines_outside_tables(path)
    assert not stray, f"{path.name}: table rows that render as text (a blank line ended their table?): {stray}"
    for rows in _tables(path):
        header = _cells(rows[0][1])
        wrong = [(n, _cells(line), line) for n, line in rows if _cells(line) != header]
        assert not wrong, (f"{path.name}: rows whose cell count differs from the header's {header} "
                           f"(escape | inside code as \\|): {wrong}")


def _links(path: Path):
    def walk(tokens):
        for token in tokens:
            if token.type == "link_open":
                yield token.attrGet("href")
            if token.type == "image":
                yield token.attrGet("src")
            if token.children:
                yield from walk(token.children)

    yield from walk(_md.parse(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_of_the_repository(path):
    broken = []
    for href in _links(path):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or not parts.path:
            continue  # absolute URLs and in-page anchors
        target = (path.parent / unquote(parts.path)).resolve()
        if not target.is_relative_to(ROOT) or not target.exists():
            broken.append(href)
    assert not broken, f"{path.name}: links to files that are not in the repository: {broken}"


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The two rules fail on the README's old mistakes (a blank line inside a table, a | in a code span, ../ links)."""
    sample = tmp_path / "sample.md"
    sample.write_text("| a | b |\n|---|---|\n| `x|y` | z |\n\n| c | d |\n\n[out](../elsewhere.md)\n", encoding="utf-8")
    assert _table_like_lines_outside_tables(sample) == [(5, "| c | d |")]
    [rows] = list(_tables(sample))
    assert [_cells(line) for _, line in rows] == [2, 2, 3]
    assert list(_links(sample)) == ["../elsewhere.md"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_it_cites_no_slide_number_a_reader_cannot_see(path):
    """The talk's slides are not in the repository: "slide 20" means nothing to a reader; say what it says."""
    cited = [f"line {n}: {line.strip()[:80]}" for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"\bslides? \d", line, re.IGNORECASE)]
    assert not cited, "\n".join(cited)


# --- README's error table against the codes the API sends --------------------------------------------------------

API_APPS = ("collector", "challenges", "newsletter", "training", "pages", "config")
# Codes raised where only a command or the admin reaches them, never an API request (why, each).
NOT_FROM_THE_API = {
    "no_such_user": "reviewers_group --add (a command)",
    "takes_part": "photos_import's bootstrap account check (a command)",
    "display_name_taken": "a free display name for a staff account's first /me/: only after three name "
                          "collisions in a row (sign-up answers 400 on fields.display_name instead)",
    "invalid_percent": "the rollout admin", "no_rollout": "the rollout admin", "no_model_in_service": "the rollout admin",
    "already_in_service": "the rollout admin", "rollout_open": "the rollout admin",
    "run_publishing": "cancelling a run in the admin", "run_finished": "cancelling a run in the admin",
    "dataset_unavailable": "the training run's dataset step (a run's failure, shown in the admin)",
    "publish_failed": "the training run's publish step (a run's failure, shown in the admin)",
    "second_factor_exists": "staff_2fa_setup without --reset (a command)",
    "no_second_factor": "staff_2fa_setup --recovery-codes (a command)",
}


def _readme_error_table() -> dict[str, set[str]]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| Status | When | Codes you will meet |")
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0]] = set(re.findall(r"`([a-z_]+)`", cells[2]))
    return table


def _trees():
    import ast

    for app in API_APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts:
                yield ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _name(node) -> str | None:
    import ast

    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _raised_codes() -> set[tuple[str, str]]:
    """(code, status) the API can answer: every domain error made in the apps (its code= or its kind's default
    code), every ApiError(status, code) and error_response(status, code) call, the image errors, and what DRF's
    own exceptions send. Read from the code's syntax tree: docstrings and comments do not count. A 500 is a bug,
    not part of the contract."""
    import ast

    from rest_framework import exceptions

    from collector.services.photos import _IMAGE_ERROR_KIND
    from config.errors import STATUS_BY_KIND

    trees = list(_trees())
    # Kinds: the base kinds, then every class the apps derive from one (with its own default_code).
    kinds = {kind.__name__: (str(status), kind.default_code) for kind, status in STATUS_BY_KIND}
    derived = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.bases:
                code = next((stmt.value.value for stmt in node.body if isinstance(stmt, ast.Assign)
                             and any(_name(t) == "default_code" for t in stmt.targets)
                             and isinstance(stmt.value, ast.Constant)), None)
                derived[node.name] = (_name(node.bases[0]), code)
    while any(name not in kinds and base in kinds for name, (base, _) in derived.items()):
        for name, (base, code) in derived.items():
            if name not in kinds and base in kinds:
                kinds[name] = (kinds[base][0], code or kinds[base][1])
    found = set()
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = _name(node.func)
            if called in kinds and called not in ("ApiError",):
                code = next((k.value.value for k in node.keywords if k.arg == "code"
                             and isinstance(k.value, ast.Constant)), kinds[called][1])
                found.add((code, kinds[called][0]))
            elif called in ("ApiError", "error_response") and len(node.args) >= 2 and all(
                    isinstance(a, ast.Constant) for a in node.args[:2]):
                found.add((node.args[1].value, str(node.args[0].value)))
    found |= {(code, kinds[kind.__name__][0]) for code, kind in _IMAGE_ERROR_KIND.items()}
    found |= {(cls.default_code, str(cls.status_code)) for cls in vars(exceptions).values()
              if isinstance(cls, type) and issubclass(cls, exceptions.APIException) and cls is not exceptions.APIException}
    found = {(code, status) for code, status in found if status != "500"}
    # DRF's ValidationError says "invalid" (config.errors keeps it); its base kind's "error" is never sent.
    return {(code, status) for code, status in found if code != "error"}


def test_readme_lists_every_error_code_the_api_sends_under_its_status():
    table = _readme_error_table()
    missing = sorted((code, status) for code, status in _raised_codes()
                     if code not in NOT_FROM_THE_API and code not in table.get(status, set()))
    assert missing == [], f"README's error table lacks these (code, status): {missing}"


def test_readme_names_no_error_code_the_api_never_sends():
    from config.errors import _DEFAULT_CODES

    sent = {code for code, _ in _raised_codes()} | set(_DEFAULT_CODES.values())
    invented = {code for codes in _readme_error_table().values() for code in codes if code not in sent}
    assert invented == set()
