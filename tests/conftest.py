import pytest



@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    """Each test writes files under its own folder and starts with fresh caches (throttles)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}},
    }
    from django.core.cache import cache

    cache.clear()
    yield


def stored_files(root) -> list[str]:
    """Every file under a storage folder, relative: to check for orphans."""
    from pathlib import Path

    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
