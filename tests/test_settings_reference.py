"""Each setting is declared once, where config/settings.py reads it, and docs/reference/settings.md says the same.

The reference page is rendered from config.env.SETTINGS (tests/test_docs.py checks it has not drifted); these
tests make sure nothing escapes the declarations: a variable read another way, a reader called without a
meaning, a variable another program reads that nobody declared, a page that would differ from host to host.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "config" / "settings.py"
READERS = {"env_str", "env_bool", "env_int", "env_float", "env_opt_int", "env_opt_float", "env_list", "env_time",
           "env_choice", "declare"}


def _is_os_environ(node) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)
            and node.value.id == "os")


def environment_reads(source: str) -> list[str]:
    """Each place the source reads the environment other than through config.env: `line: code`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        read = False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if _is_os_environ(node.func.value) and node.func.attr in ("get", "items", "keys", "values", "copy"):
                read = True
            if node.func.attr == "getenv" and isinstance(node.func.value, ast.Name) and node.func.value.id == "os":
                read = True
        if isinstance(node, ast.Subscript) and _is_os_environ(node.value) and isinstance(node.ctx, ast.Load):
            read = True
        if isinstance(node, ast.Compare) and any(_is_os_environ(c) for c in node.comparators):
            read = True
        if read:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def undeclared_reads(source: str) -> list[str]:
    """Calls of config.env's readers without a meaning (help=)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in READERS
                and "help" not in {k.arg for k in node.keywords}):
            found.append(f"{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_settings_reads_the_environment_only_through_the_declaring_readers():
    source = SETTINGS_FILE.read_text(encoding="utf-8")
    assert environment_reads(source) == [], "read it with config.env's readers, with help=, so it is declared"
    assert undeclared_reads(source) == [], "every reader call needs help= (what the setting means)"


def test_the_checks_catch_what_they_are_for():
    sample = ('import os\nA = os.environ.get("A")\nB = os.environ["B"]\nC = "C" in os.environ\nD = os.getenv("D")\n'
              'os.environ.setdefault("E", "1")\nF = env_int("F", 1)\nG = env_int("G", 1, help="G.")\n')
    assert sorted(int(line.split(":")[0]) for line in environment_reads(sample)) == [2, 3, 4, 5]
    assert [line.split(":")[0] for line in undeclared_reads(sample)] == ["7"]


def test_every_declared_setting_has_a_row_in_the_reference_page():
    from config.env import SETTINGS

    page = (ROOT / "docs" / "reference" / "settings.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", page, re.MULTILINE))
    assert set(SETTINGS) == rows
    assert all(s.help for s in SETTINGS.values())


def _python_reads(path: Path) -> set[str]:
    """Names a Python file reads with os.environ.get / os.getenv (a module-level constant name is followed)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.Constant)}
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
                and ((node.func.attr == "get" and _is_os_environ(node.func.value)) or node.func.attr == "getenv")):
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                names.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in constants:
                names.add(constants[arg.id])
    return names


def test_every_variable_another_program_reads_is_declared_too():
    """deploy/run-local.sh (`make run`), gunicorn's settings and the apps' own code read a few variables."""
    from config.env import SETTINGS

    shell = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[:}-]", (ROOT / "deploy" / "run-local.sh").read_text()))
    python = set()
    for folder in ("config", "collector", "training", "challenges", "newsletter", "pages"):
        for path in (ROOT / folder).rglob("*.py"):
            if path != SETTINGS_FILE and path != ROOT / "config" / "env.py":
                python |= _python_reads(path)
    python |= _python_reads(ROOT / "deploy" / "gunicorn.conf.py")
    assert {"RUN_ADDRESS", "GUNICORN_WORKERS", "CROWDLENS_REVIEWER_PASSWORD"} <= shell | python  # the scan sees them
    assert (shell | python) - set(SETTINGS) == set()


def test_the_reference_is_the_same_whatever_the_environment():
    """A default computed from another variable or a path must be shown as text, or the page differs by host."""
    from config.reference import settings_page

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false", SECRET_KEY="another-host",
               DATABASE_URL="postgres://someone@db.example:5432/other", REDIS_URL="redis://cache.example:6379/3",
               CROWDLENS_VAR_DIR="/srv/elsewhere", SITE_URL="https://photos.example", TRAINING_VARIANTS="float32",
               DEFAULT_FROM_EMAIL="Other <other@example.org>", TIME_ZONE="Europe/Berlin")
    done = subprocess.run([sys.executable, "-c", "from config.reference import settings_page; "
                           "import sys; sys.stdout.write(settings_page())"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == settings_page()
