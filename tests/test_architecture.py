"""The import rules of docs/architecture.md, checked on the code as it is.

Floors from the ground up: config (settings, errors, small helpers; its URL
wiring excepted) < collector < training < challenges < newsletter < pages. A
module may import its own app and the floors below it; no app imports another
app's `apis` or `views` module.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = ["collector", "training", "challenges", "newsletter", "pages"]
APPS = set(FLOORS)


def _modules(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        yield path


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _violations(app: str):
    own_floor = FLOORS.index(app)
    for path in _modules(app):
        seen = set()
        for line, name in _imports(path):
            if line in seen:
                continue
            top, *rest = name.split(".")
            where = f"{path.relative_to(ROOT)}:{line} imports {name}"
            if top in APPS and top != app:
                if FLOORS.index(top) > own_floor:
                    seen.add(line)
                    yield f"{where} (a floor above {app})"
                elif rest and rest[0] in ("apis", "views"):
                    seen.add(line)
                    yield f"{where} (another app's {rest[0]} module)"
            if top == "config" and rest and rest[0] in ("urls", "wsgi"):
                seen.add(line)
                yield f"{where} (config's wiring imports the apps, not the other way)"


@pytest.mark.parametrize("app", FLOORS)
def test_app_imports_only_its_own_floor_and_below(app):
    assert list(_violations(app)) == []


def test_the_rule_sees_a_wrong_import(tmp_path, monkeypatch):
    bad = tmp_path / "collector"
    bad.mkdir()
    (bad / "x.py").write_text("from challenges import services\nimport training.apis\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [v.split(" (")[1] for v in _violations("collector")] == ["a floor above collector)", "a floor above collector)"]


def test_a_module_over_400_lines_says_why_at_its_top():
    """One concept a module: a long one carries its reason in its docstring ("Over 400 lines on purpose: ...")."""
    unexplained = []
    for app in ["config", *FLOORS]:
        for path in _modules(app):
            text = path.read_text(encoding="utf-8")
            if text.count("\n") > 400 and "Over 400 lines on purpose" not in (ast.get_docstring(ast.parse(text)) or ""):
                unexplained.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not unexplained, "split these by concept or say why at their top: " + ", ".join(unexplained)
