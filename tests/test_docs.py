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
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "README.md"]

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


# --- the reference pages and the error-code registry ---------------------------------------------------------------


def test_the_reference_pages_say_what_the_code_says():
    """docs/reference/ is rendered from the declarations (error codes, settings, commands, API): no page drifts."""
    from config import reference

    assert reference.drift() == [], "run `manage.py docs_reference` and commit docs/reference/"


def test_every_code_a_client_can_meet_is_registered_under_its_status():
    """DRF's own exceptions, each domain kind's default code, the image errors and the handler's fallbacks."""
    from rest_framework import exceptions

    from collector.services.photos import _IMAGE_ERROR_KIND
    from config.error_codes import CODES, registered
    from config.errors import _DEFAULT_CODES, STATUS_BY_KIND, status_of

    drf = {(cls.default_code, cls.status_code) for cls in vars(exceptions).values()
           if isinstance(cls, type) and issubclass(cls, exceptions.APIException) and cls is not exceptions.APIException
           and cls.default_code != "error"}
    assert {(code, status_of(registered(code))) for code, _ in drf} == drf
    for kind, status in STATUS_BY_KIND:
        assert status_of(registered(kind.default_code, kind)) == status
    for code, kind in _IMAGE_ERROR_KIND.items():
        registered(code, kind)
    assert {status: status_of(CODES[code]) for status, code in _DEFAULT_CODES.items()} == {
        status: status for status in _DEFAULT_CODES}


def test_a_code_that_is_not_registered_cannot_be_raised():
    from config.domain_errors import Conflict, NotFound
    from config.error_codes import UnknownErrorCode

    with pytest.raises(UnknownErrorCode, match="not registered"):
        NotFound("Gone.", code="gone_fishing")
    with pytest.raises(UnknownErrorCode, match="registered for Conflict"):
        NotFound("Withdrawn.", code="withdrawn")  # a code answers with one status, always
    assert Conflict("Withdrawn.", code="withdrawn").code == "withdrawn"


def test_the_api_reference_page_lists_no_admin_or_command_code_as_an_api_answer():
    from config.error_codes import CODES

    text = (ROOT / "docs" / "reference" / "errors.md").read_text(encoding="utf-8")
    api_part = text.split("## Codes only the admin or a command shows")[0]
    assert {c for c in re.findall(r"`([a-z_]+)`", api_part) if c in CODES and CODES[c].reached_by} == set()


def _files_written_into_the_checkout(path: Path) -> list[str]:
    """Shell redirections (`> FILE`) in the page's sh code blocks to a relative path outside var/."""
    found = []
    for token in _md.parse(path.read_text(encoding="utf-8")):
        if token.type == "fence" and token.info.strip() in ("sh", "bash", "shell", "console"):
            for line in token.content.splitlines():
                command = line.split(" #")[0]
                for target in re.findall(r"(?<![0-9&>])>>?\s*([^\s&|;<>]+)", command):
                    if not target.startswith(("/", "$", "~", "var/", "&")):
                        found.append(f"{target} (in: {line.strip()})")
    return found


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_its_commands_leave_no_untracked_file_in_the_checkout(path):
    """README's first steps once wrote labels.txt into the repository root, where `git status` shows it forever."""
    assert _files_written_into_the_checkout(path) == []


def test_the_redirection_check_sees_a_file_written_into_the_checkout(tmp_path):
    sample = tmp_path / "sample.md"
    sample.write_text("```sh\nprintf 'mug\\n' > labels.txt   # here\nmake run > var/run.log 2>&1\n"
                      "python x.py > /tmp/out.conf\n```\n", encoding="utf-8")
    assert _files_written_into_the_checkout(sample) == ["labels.txt (in: printf 'mug\\n' > labels.txt   # here)"]


def test_the_commands_page_has_each_project_command_and_none_of_djangos():
    text = (ROOT / "docs" / "reference" / "commands.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^## (\w+)$", text, re.MULTILINE))
    on_disk = {p.stem for app in ("config", "collector", "training", "challenges", "newsletter", "pages")
               for p in (ROOT / app / "management" / "commands").glob("*.py") if not p.stem.startswith("_")}
    assert documented == on_disk
    assert "usage: manage.py train " in text and "--verbosity" not in text.split("## ", 1)[1]
