import pytest

from tests.conftest import stored_files


@pytest.fixture
def label(db):
    from tests.factories import make_label

    return make_label("mug", name="Mug")


@pytest.fixture
def volunteer(db):
    from tests.factories import make_volunteer

    return make_volunteer("alice")


@pytest.fixture
def api(volunteer):
    """An API client holding the volunteer's token."""
    from tests.factories import client_for

    return client_for(volunteer.user)


def files_and_rows(settings) -> tuple[list[str], list[str]]:
    """Files on disk under MEDIA_ROOT, and the storage keys that photo rows point to."""
    from collector.models import Photo

    keys = sorted(k for photo in Photo.objects.all() for k in photo.storage_keys)
    return stored_files(settings.MEDIA_ROOT), keys


@pytest.fixture
def assert_no_orphans(settings):
    """Call it after a request: every stored file belongs to a row and every row's files exist."""

    def check():
        files, keys = files_and_rows(settings)
        assert files == keys, f"files without rows: {sorted(set(files) - set(keys))}; rows without files: {sorted(set(keys) - set(files))}"
        return files

    return check
