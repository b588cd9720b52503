import os

import pytest

DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback",
                     "live_server"}
# Fixtures that are costly to build and shared beyond one test: with pytest-xdist (`-n 2 --dist loadgroup`,
# .ci/run) the tests that use one go to one worker, which builds it once. These session-wide ones by
# name; every module-scoped one (a browser, a cluster of processes, converted models) per module.
SHARED_PER_SESSION = {"first_run": "trained-model", "classes_result": "classes-model", "migrated_sqlite": "file-sqlite"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker reads the xdist_group marks set here
def pytest_collection_modifyitems(config, items):
    """Mark `database` each test whose outcome may depend on which database DATABASE_URL names, and
    `no_database` each test that reaches none.

    `database` is every test that reaches the database through pytest-django (the only way a test, or a
    process it starts, can reach the test database), less the browser tests and those marked
    `any_database`. CI (.ci/run) runs the `database` tests on both, every other test once: the SQLite pass
    `-m "database or no_database"`, the PostgreSQL pass `-m "not no_database"` (the browser tests and
    `any_database` ones need a database, and PostgreSQL is production's).
    """
    for item in items:
        if not _uses_database(item):
            item.add_marker(pytest.mark.no_database)
        elif not item.get_closest_marker("browser") and not item.get_closest_marker("any_database"):
            item.add_marker(pytest.mark.database)
        fixtures = set(getattr(item, "fixturenames", ()))
        group = next((SHARED_PER_SESSION[name] for name in sorted(SHARED_PER_SESSION.keys() & fixtures)), None)
        if group is None and _uses_module_fixture(item):
            group = item.nodeid.split("::")[0]
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def _uses_module_fixture(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return bool(info) and any(defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values())


def pytest_runtest_logreport(report):
    """With CROWDLENS_TEST_OUTCOMES set (.ci/run), append how each test ended, for .ci/passes_cover.py.

    Written by the one process that sees every report (the controller when pytest-xdist runs workers)."""
    path = os.environ.get("CROWDLENS_TEST_OUTCOMES")
    if path and not os.environ.get("PYTEST_XDIST_WORKER") and (report.when == "call" or report.outcome != "passed"):
        with open(path, "a") as out:
            out.write(f"{report.outcome}\t{report.nodeid}\n")


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path, request):
    """Each test writes files under its own folder and starts with fresh caches (throttles)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}},
    }
    from django.core.cache import cache

    # The cache is the database's (as in production, without REDIS_URL): only
    # a test that may use the database can have counters to clear.
    if _uses_database(request.node) or not settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
        for name in ("transactional_db", "db"):  # a test asking for the database by fixture gets it first
            if name in request.fixturenames:
                request.getfixturevalue(name)
                break
        cache.clear()
    yield


def _uses_database(item) -> bool:
    return bool(item.get_closest_marker("django_db")) or bool(DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())))


def stored_files(root) -> list[str]:
    """Every file under a storage folder, relative: to check for orphans."""
    from pathlib import Path

    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- S3 (moto server mode; see tests/s3.py) ------------------------------------


@pytest.fixture(scope="session")
def moto_s3():
    """One moto S3 server for the whole run, on a free loopback port."""
    from tests.s3 import MotoS3Server

    server = MotoS3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_storage(moto_s3, settings):
    """Point the default storage at a fresh bucket on the moto server; yields a tests.s3.S3Bucket."""
    from tests.s3 import S3Bucket, storage_settings

    bucket = moto_s3.create_bucket()
    settings.STORAGES = {**settings.STORAGES, "default": storage_settings(bucket=bucket, endpoint_url=moto_s3.endpoint_url)}
    settings.S3_BUCKET = bucket
    settings.S3_ENDPOINT_URL = moto_s3.endpoint_url
    yield S3Bucket(server=moto_s3, bucket=bucket, client=moto_s3.client())
