"""The server's own prediction for each new photo (issue 19): what decides the "stump the model" bonus.

The model in service runs in LiteRT (training.ml.classify_image) on the photo's stored training
derivative, prepared as the manifest tells phones (centre square, the variant's normalisation). The
phone's `predicted_label` is never used for this: anyone can send any claim. A photo is predicted by
the version in service when the job first sees it (the job runs every few minutes, so that is the
version in service at upload time, bar a rollback in between); a photo uploaded before the version
in service was published is left alone (no model of its time judged it).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from collector import selectors as collector_selectors
from collector import storage
from training import ml
from training.models import ModelFile, PhotoPrediction
from training.selectors import model_in_service
from training.signals import photo_predicted

logger = logging.getLogger(__name__)


def photos_predict(*, limit: int = 500) -> int:
    """Predict up to `limit` photos that have no server prediction yet; returns how many were predicted.

    Safe to run twice at once: a photo predicted by another process meanwhile is skipped (one row per
    photo). Each new prediction is announced (training.signals.photo_predicted) after it commits, so
    challenges settles that photo's points (the stumped bonus)."""
    version = model_in_service()
    if version is None or version.published_at is None:
        return 0
    model_file = (ModelFile.objects.filter(model_version=version, variant=settings.TRAINING_GATE_VARIANT).first()
                  or ModelFile.objects.filter(model_version=version).exclude(variant="coreml").first())
    if model_file is None:
        return 0
    photos = list(collector_selectors.photos_uploaded_since(since=version.published_at)
                  .exclude(pk__in=PhotoPrediction.objects.values("photo_id")).only("id", "training_key")[:limit])
    if not photos:
        return 0
    with storage.open_file(model_file.model_key) as handle:
        model_bytes = handle.read()
    spec = ml.InputSpec(**model_file.input_spec)
    predicted = 0
    with tempfile.TemporaryDirectory(prefix="crowdlens-predict-") as folder:
        for photo in photos:
            path = Path(folder) / f"{photo.pk}.jpg"
            try:
                with storage.open_file(photo.training_key) as handle:
                    path.write_bytes(handle.read())
            except FileNotFoundError:
                logger.warning("photo %s: its training file is missing; not predicted", photo.pk)
                continue
            scores = ml.classify_image(model_content=model_bytes, image_path=path, input_spec=spec)
            best = max(range(len(scores)), key=scores.__getitem__)
            try:
                with transaction.atomic():
                    PhotoPrediction.objects.create(photo_id=photo.pk, model_version=version.version,
                                                   variant=model_file.variant, label=version.labels[best],
                                                   confidence=round(scores[best], 4))
            except IntegrityError:
                continue  # another process predicted it meanwhile
            predicted += 1
            transaction.on_commit(lambda pk=photo.pk: photo_predicted.send(sender=PhotoPrediction, photo_id=pk))
    return predicted
