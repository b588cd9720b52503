import pytest



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
    if _uses_database(request) or not settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
        for name in ("transactional_db", "db"):  # a test asking for the database by fixture gets it first
            if name in request.fixturenames:
                request.getfixturevalue(name)
                break
        cache.clear()
    yield


def _uses_database(request) -> bool:
    db_fixtures = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "live_server"}
    return bool(request.node.get_closest_marker("django_db")) or bool(db_fixtures & set(request.fixturenames))


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
