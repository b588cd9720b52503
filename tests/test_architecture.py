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


def _collector_model_queries(app: str):
    """Places in ``app`` that query a collector model itself (``Photo.objects``, ``Volunteer._meta``...).

    Other apps read collector through collector.selectors and write through its services; they may
    import its models for relations, type hints and choices (PhotoStatus), never to query them."""
    for path in _modules(app):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        models = {alias.asname or alias.name for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module == "collector.models" for alias in node.names}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in ("objects", "_meta", "_default_manager")
                    and isinstance(node.value, ast.Name) and node.value.id in models):
                yield f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}"


@pytest.mark.parametrize("app", [app for app in FLOORS if app != "collector"])
def test_other_apps_read_collector_through_its_selectors_only(app):
    assert list(_collector_model_queries(app)) == []


def test_the_selector_rule_sees_a_query(tmp_path, monkeypatch):
    bad = tmp_path / "challenges"
    bad.mkdir()
    (bad / "x.py").write_text("from collector.models import Photo as P, PhotoStatus\nP.objects.filter(status=PhotoStatus.APPROVED)\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert list(_collector_model_queries("challenges")) == ["challenges/x.py:2 P.objects"]


def test_the_training_library_imports_no_django_and_no_config():
    """training/ml runs on a GPU host or in a benchmark without Django: its inputs come as plain data."""
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in sorted((ROOT / "training" / "ml").rglob("*.py"))
             for line, name in _imports(path) if name.split(".")[0] in ("django", "config", "rest_framework", *APPS)]
    assert wrong == []


def test_a_module_over_400_lines_says_why_at_its_top():
    """One concept a module: a long one carries its reason in its docstring ("Over 400 lines on purpose: ...")."""
    unexplained = []
    for app in ["config", *FLOORS]:
        for path in _modules(app):
            text = path.read_text(encoding="utf-8")
            if text.count("\n") > 400 and "Over 400 lines on purpose" not in (ast.get_docstring(ast.parse(text)) or ""):
                unexplained.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not unexplained, "split these by concept or say why at their top: " + ", ".join(unexplained)
