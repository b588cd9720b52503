"""CI's two passes (.ci/run): which tests the SQLite pass selects, and the check that none is dropped from both."""

import importlib.util
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


def _selected(marks: str, files: list[str]) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CROWDLENS_TEST_OUTCOMES")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                           "-m", marks, *files], cwd=BASE, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_the_database_s_tests_run_on_both_and_every_other_test_once():
    """.ci/run's two selections: SQLite `database or no_database`, PostgreSQL `not no_database`."""
    files = ["tests/training/test_runs.py", "tests/training/test_scheduler.py", "tests/training/ml/test_runtime.py",
             "tests/hardening/test_csp_browser.py", "tests/training/test_pipeline.py"]
    sqlite, postgres = _selected("database or no_database", files), _selected("not no_database", files)
    everything = _selected("", files)
    assert sqlite | postgres == everything
    runs, scheduler = "tests/training/test_runs.py::", "tests/training/test_scheduler.py::"
    # Reaches the database (pytest-django's marker, or a fixture that needs it): both passes.
    both = {f"{runs}TestConcurrentClaims::test_two_processes_claiming_at_the_same_moment_make_one_run",
            f"{runs}TestTrainCommand::test_it_says_so_and_does_nothing_while_another_run_holds_the_claim",
            f"{scheduler}TestJobsMissed::test_it_runs_a_time_missed_within_the_grace_once"}
    assert both <= sqlite & postgres
    assert sqlite & postgres == _selected("database", files)
    # No database, or only a file database of its own (the scheduler's processes), and the training library
    # (pytest-django refuses it the database): the SQLite pass only.
    assert f"{scheduler}TestLastFireTime::test_it_honours_the_day_of_week" in sqlite - postgres
    assert [t for t in sqlite - postgres if "TestRunschedulerProcess" in t]
    assert [t for t in sqlite - postgres if "test_runtime.py" in t]
    # A browser test on the live server, and the night chain (marked any_database): PostgreSQL only.
    assert [t for t in postgres - sqlite if "test_csp_browser.py" in t]
    assert [t for t in postgres - sqlite if "TestNightAfterNight" in t]
