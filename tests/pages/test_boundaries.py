"""The pages app is the top floor (docs/architecture.md): it reads the other apps through their selectors and
writes through their services, nothing imports it, and no app imports another app's API module.

Read from the source with ast, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("collector", "training", "challenges", "newsletter", "pages")
# What pages may import from another app: reads, writes, and framework-free helpers without rows.
PAGES_MAY_IMPORT = {"selectors", "services", "periods", "throttles", "password_validation"}


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, as dotted names (``from a import b`` gives ``a.b`` as well as ``a``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _modules(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


class TestPagesBoundaries:
    def test_it_reads_and_writes_other_apps_only_through_selectors_and_services(self):
        wrong = []
        for path in _modules("pages"):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] in APPS and parts[0] != "pages" and len(parts) > 1 and parts[1] not in PAGES_MAY_IMPORT:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
        assert wrong == []
        seen = {name for path in _modules("pages") for name in _imports(path)}
        assert {"challenges.selectors", "collector.services"} <= seen  # the scan does see pages' imports

    def test_no_app_imports_pages(self):
        wrong = [f"{path.relative_to(ROOT)} imports {name}"
                 for app in APPS if app != "pages" for path in _modules(app)
                 for name in _imports(path) if name.split(".")[0] == "pages"]
        assert wrong == []

    def test_no_app_imports_another_apps_api_module(self):
        wrong = []
        for app in APPS:
            for path in _modules(app):
                for name in _imports(path):
                    parts = name.split(".")
                    if parts[0] in APPS and parts[0] != app and len(parts) > 1 and parts[1] == "apis":
                        wrong.append(f"{path.relative_to(ROOT)} imports {name}")
        assert wrong == []
