"""The in-service model's guesses for pending photos, for the review queue (docs/review.md).

Run by the scheduler (``manage.py review_guesses``), never by the web process: the LiteRT interpreter
loads here. Each pending photo's stored training derivative goes through the model in service exactly as
a phone's photo would; the top guesses are stored with the model version (collector's PhotoGuess). A new
model in service guesses every pending photo again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from django.conf import settings

from collector import selectors as collector_selectors
from collector import services as collector_services
from collector import storage
from training import ml
from training.models import ModelVersion, VersionStatus


def review_guesses_compute(*, limit: int = 2000, log: Callable[[str], None] = lambda message: None) -> int:
    """Guess up to ``limit`` pending photos the model in service has not guessed yet; returns how many."""
    from training.ml.guess import Guesser

    model = ModelVersion.objects.filter(in_service=True, status=VersionStatus.PUBLISHED).first()
    if model is None:
        log("No model in service: nothing to guess with.")
        return 0
    todo = collector_selectors.photos_needing_guesses(model_version=model.version, limit=limit)
    if not todo:
        log(f"Every pending photo has v{model.version}'s guesses.")
        return 0
    # The file the release gate judged (float32 by default): the best measured of the version's variants.
    file = (model.files.filter(variant=settings.TRAINING_GATE_VARIANT).first()
            or model.files.filter(variant="float32").first() or model.files.first())
    done = 0
    with tempfile.TemporaryDirectory(prefix="crowdlens-guesses-") as folder:
        local = Path(folder) / f"v{model.version}-{file.variant}.tflite"
        with storage.open_file(file.model_key) as handle:
            local.write_bytes(handle.read())
        guesser = Guesser(model_path=local, labels=list(model.labels), input_spec=ml.InputSpec(**file.input_spec))
        image = Path(folder) / "photo"
        for photo_id, key in todo:
            try:
                with storage.open_file(key) as handle:
                    image.write_bytes(handle.read())
            except FileNotFoundError:
                continue  # withdrawn meanwhile
            if collector_services.photo_guess_record(photo_id=photo_id, model_version=model.version,
                                                     top=guesser.top(image)):
                done += 1
    log(f"v{model.version} ({file.variant}) guessed {done} pending photo(s).")
    return done
