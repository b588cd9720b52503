"""The server's own predictions for stored photos: one job for the review queue and the stumped bonus.

Run by the scheduler (``manage.py photos_predict``), never by the web process: the LiteRT interpreter loads
here. The model in service (the file the release gate judged, TRAINING_GATE_VARIANT, float32 by default) runs
on each photo's stored training derivative, prepared as a phone prepares a photo (training.ml.guess.Guesser,
the manifest's crop and normalisation), and its top three labels are stored through
collector.services.photo_prediction_record, in the roles collector.models.PhotoPrediction describes:

- the photo's prediction at upload, for pending or approved photos uploaded since the version in service was
  published (the job runs every few minutes, so that is the version in service at upload time, bar a rollback
  in between): what decides the "stump the model" bonus, since the phone's `predicted_label` is a claim
  anyone can forge; a photo uploaded before is left alone (no model of its time judged it);
- the review queue's guess, for every pending photo the version in service has not guessed yet: a new model
  in service guesses every pending photo again.

Safe to run twice at once: the photo's row lock makes a prediction stored once.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Callable

from django.conf import settings

from collector import selectors as collector_selectors
from collector import services as collector_services
from collector import storage
from training import ml
from training.models import ModelFile
from training.selectors import model_in_service

logger = logging.getLogger(__name__)


def photos_predict(*, limit: int = 2000, log: Callable[[str], None] = lambda message: None) -> int:
    """Predict up to ``limit`` photos with the model in service (new uploads first, then pending photos it
    has not guessed yet); returns how many photos got a prediction stored."""
    from training.ml.guess import Guesser

    version = model_in_service()
    if version is None:
        log("No model in service: nothing to predict with.")
        return 0
    model_file = (ModelFile.objects.filter(model_version=version, variant=settings.TRAINING_GATE_VARIANT).first()
                  or ModelFile.objects.filter(model_version=version, variant="float32").first()
                  or ModelFile.objects.filter(model_version=version).exclude(variant="coreml").first())
    if model_file is None:
        log(f"v{version.version} has no file LiteRT runs: nothing predicted.")
        return 0
    todo = collector_selectors.photos_needing_prediction(model_version=version.version,
                                                         published_at=version.published_at, limit=limit)
    if not todo:
        log(f"Nothing to predict: v{version.version} has guessed every pending photo and predicted every photo "
            "uploaded since it was published.")
        return 0
    done = pending = 0
    with tempfile.TemporaryDirectory(prefix="crowdlens-predict-") as folder:
        local = Path(folder) / f"v{version.version}-{model_file.variant}.tflite"
        with storage.open_file(model_file.model_key) as handle:
            local.write_bytes(handle.read())
        guesser = Guesser(model_path=local, labels=list(version.labels),
                          input_spec=ml.InputSpec(**model_file.input_spec))
        image = Path(folder) / "photo"
        for photo_id, key in todo:
            try:
                with storage.open_file(key) as handle:
                    image.write_bytes(handle.read())
            except FileNotFoundError:
                logger.warning("photo %s: its training file is missing; not predicted", photo_id)
                continue  # withdrawn meanwhile, or lost
            row = collector_services.photo_prediction_record(
                photo_id=photo_id, model_version=version.version, variant=model_file.variant,
                model_published_at=version.published_at, top=guesser.top(image))
            if row is not None:
                done += 1
                pending += row.for_review
    log(f"v{version.version} ({model_file.variant}) predicted {done} photo(s): {pending} pending, "
        f"{done - pending} already decided.")
    return done
