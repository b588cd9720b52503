"""CI's two passes (.ci/run): which tests the SQLite pass selects, and the check that none is dropped from both."""

import importlib.util
import json
import os
import subprocess
import sys

from django.conf import settings

BASE = settings.BASE_DIR


def _passes_cover():
    spec = importlib.util.spec_from_file_location("passes_cover", BASE / ".ci" / "passes_cover.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestPassesCover:
    COLLECTED = "tests/a.py::test_db\ntests/a.py::test_pure\ntests/b.py::TestX::test_vendor[1]\n\n3 tests collected in 1s\n"

    def test_it_accepts_a_test_that_passed_in_either_pass(self):
        check = _passes_cover()
        postgres = check.outcomes("passed\ttests/a.py::test_db\npassed\ttests/a.py::test_pure\n"
                                  "skipped\ttests/b.py::TestX::test_vendor[1]\n")
        sqlite = check.outcomes("passed\ttests/a.py::test_db\npassed\ttests/b.py::TestX::test_vendor[1]\n")
        assert check.uncovered(check.collected_ids(self.COLLECTED), [postgres, sqlite]) == []

    def test_it_names_a_test_skipped_in_one_pass_and_left_out_of_the_other(self):
        check = _passes_cover()
        postgres = check.outcomes("passed\ttests/a.py::test_db\npassed\ttests/a.py::test_pure\n"
                                  "skipped\ttests/b.py::TestX::test_vendor[1]\n")
        sqlite = check.outcomes("passed\ttests/a.py::test_db\n")
        assert check.uncovered(check.collected_ids(self.COLLECTED), [postgres, sqlite]) == [
            "tests/b.py::TestX::test_vendor[1]: skipped; not run"]

    def test_it_reads_the_ids_pytest_xdist_gave_a_group(self):
        check = _passes_cover()
        collected = check.collected_ids("tests/a.py::test_db[x@example.org]\ntests/b.py::test_model\n")
        postgres = check.outcomes("passed\ttests/a.py::test_db[x@example.org]@tests/a.py\n"
                                  "passed\ttests/b.py::test_model@trained-model\n")
        assert check.uncovered(collected, [postgres]) == []
        assert check.uncovered(collected, [check.outcomes("passed\ttests/a.py::test_db[x@example.org]\n")]) == [
            "tests/b.py::test_model: not run"]

    def test_a_test_whose_teardown_failed_did_not_pass(self, tmp_path):
        check = _passes_cover()
        (tmp_path / "collected.txt").write_text("tests/a.py::test_db\n")
        (tmp_path / "postgres.tsv").write_text("passed\ttests/a.py::test_db\nfailed\ttests/a.py::test_db\n")
        (tmp_path / "sqlite.tsv").write_text("")
        assert check.main([str(tmp_path / name) for name in ("collected.txt", "postgres.tsv", "sqlite.tsv")]) == 1
        (tmp_path / "postgres.tsv").write_text("passed\ttests/a.py::test_db\n")
        assert check.main([str(tmp_path / name) for name in ("collected.txt", "postgres.tsv", "sqlite.tsv")]) == 0


FILES = ["tests/training/test_runs.py", "tests/training/test_scheduler.py", "tests/training/ml/test_runtime.py",
         "tests/hardening/test_csp_browser.py", "tests/training/test_pipeline.py"]


def _collect(args: list[str], env: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CROWDLENS_TEST_OUTCOMES")} | (env or {})
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", *args],
                          cwd=BASE, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _selections(expressions: list[str], tmp_path) -> dict[str, set[str]]:
    """What each `-m` expression selects among FILES, from one collection (tests/ci_selection.py)."""
    out = tmp_path / "selection.jsonl"
    _collect(["-p", "tests.ci_selection", *FILES],
             {"CROWDLENS_CI_EXPRESSIONS": json.dumps(expressions), "CROWDLENS_CI_SELECTION": str(out)})
    selected: dict[str, set[str]] = {e: set() for e in expressions}
    for line in out.read_text().splitlines():
        node, chosen = json.loads(line)
        for expression in chosen:
            selected[expression].add(node)
    return selected


def test_the_database_s_tests_run_on_both_and_every_other_test_once(tmp_path):
    """.ci/run's two selections: SQLite `database or no_database`, PostgreSQL `not no_database`."""
    chosen = _selections(["database or no_database", "not no_database", "", "database"], tmp_path)
    sqlite, postgres, everything = chosen["database or no_database"], chosen["not no_database"], chosen[""]
    # The one collection answers as pytest's own -m does.
    assert postgres == {line for line in _collect(["-m", "not no_database", *FILES]).splitlines() if "::" in line}
    assert sqlite | postgres == everything and len(everything) > 30  # the five files, not an empty collection
    runs, scheduler = "tests/training/test_runs.py::", "tests/training/test_scheduler.py::"
    # Reaches the database (pytest-django's marker, or a fixture that needs it): both passes.
    both = {f"{runs}TestConcurrentClaims::test_two_processes_claiming_at_the_same_moment_make_one_run",
            f"{runs}TestTrainCommand::test_it_says_so_and_does_nothing_while_another_run_holds_the_claim",
            f"{scheduler}TestJobsMissed::test_it_runs_a_time_missed_within_the_grace_once"}
    assert both <= sqlite & postgres
    assert sqlite & postgres == chosen["database"]
    # No database, or only a file database of its own (the scheduler's processes), and the training library
    # (pytest-django refuses it the database): the SQLite pass only.
    assert f"{scheduler}TestLastFireTime::test_it_honours_the_day_of_week" in sqlite - postgres
    assert [t for t in sqlite - postgres if "TestRunschedulerProcess" in t]
    assert [t for t in sqlite - postgres if "test_runtime.py" in t]
    # A browser test on the live server, and the night chain (marked any_database): PostgreSQL only.
    assert [t for t in postgres - sqlite if "test_csp_browser.py" in t]
    assert [t for t in postgres - sqlite if "TestNightAfterNight" in t]
