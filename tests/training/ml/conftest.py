"""The training library's tests share the session's one real training run (tests/training/tiny_run.py)."""

from __future__ import annotations

import pytest

from tests.training.tiny_run import FIRST_RUN_INFO, SIZE, Photos, tiny_hparams  # noqa: F401 (imported from here)


@pytest.fixture(scope="session")
def photos(trainable_photos) -> Photos:
    """Here `photos` are the shared run's generated photos (in tests/training/, the upload helper)."""
    return trainable_photos
