"""The session's trained models built once per CI run, not once per pass.

CI runs two test passes side by side (.ci/run: the tests marked database on both PostgreSQL and SQLite,
every other test on one of them), and both need the same tiny trained models (`first_run`, `classes_result`)
for the delivery API's, the review guesses' and the stumped bonus's tests, which depend on the database, not
on training. With `CROWDLENS_TEST_MODELS` naming a folder, the first process to need a model trains it there
under a file lock and pickles what the fixture returns; the other waits on the lock and reads it. Each process
gets its own copy of the objects (a test that changes one changes only its own); the tests read the files and
never write them.

The cache is keyed by the sources that shape the models (the training library and these fixtures), so a folder
kept between runs never hands out a model of older code. Unset (a plain `make test`), each session trains its
own, as before.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
SHAPING = ("training/ml", "tests/training/tiny_run.py", "tests/training/images.py", "tests/training/conftest.py",
           "tests/training/built_once.py", "config/settings.py")


def sources_key() -> str:
    digest = hashlib.sha256()
    for entry in SHAPING:
        path = ROOT / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def built_once(name: str, build: Callable[[Path], T], fresh_folder: Callable[[], Path]) -> T:
    """`build(folder)`, or what another process built for the same name and sources (see the module's text).

    Without CROWDLENS_TEST_MODELS, `build(fresh_folder())`."""
    root = os.environ.get("CROWDLENS_TEST_MODELS")
    if not root:
        return build(fresh_folder())
    folder = Path(root) / f"{name}-{sources_key()}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    done = folder / "built.pickle"
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the build raises
        if done.exists():
            return pickle.loads(done.read_bytes())
        folder.mkdir(exist_ok=True)
        value = build(folder)
        partial = folder / "built.pickle.partial"
        partial.write_bytes(pickle.dumps(value))
        os.replace(partial, done)  # whole or absent: a killed build leaves nothing to read
        return value
