"""What the model in service said about a photo (training's photos_predict job computes it; docs/review.md,
docs/challenges.md). One row per photo and model version, in the roles collector.models.PhotoPrediction
describes; a row no role holds any more is deleted."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from collector.models import Photo, PhotoPrediction, PhotoStatus
from collector.signals import photo_predicted


def photo_prediction_record(*, photo_id: int, model_version: int, top: list[tuple[str, float]], variant: str = "",
                            model_published_at: dt.datetime | None = None) -> PhotoPrediction | None:
    """Store what ``model_version`` (published at ``model_published_at``) said about the photo, ``top`` being
    [(label slug, probability)] best first, in each role that needs it now:

    - the prediction at upload, if the photo has none, is pending or approved, and was uploaded at or after
      ``model_published_at`` (a photo uploaded before is left alone: no model of its time judged it);
    - the review guess, if the photo is pending and its guess is another version's (replacing that one).

    None when the photo is gone or no role needs it (decided meanwhile, or another run stored it first: the
    photo's row lock makes two runs at once store it once). A new prediction at upload is announced
    (collector.signals.photo_predicted) after the commit."""
    if not top:
        return None
    with transaction.atomic():
        photo = (Photo.objects.select_for_update().filter(pk=photo_id)
                 .only("pk", "label_id", "status", "created_at").first())
        if photo is None:
            return None
        rows = list(PhotoPrediction.objects.filter(photo_id=photo_id))
        review = next((row for row in rows if row.for_review), None)
        at_upload = (model_published_at is not None and photo.created_at >= model_published_at
                     and photo.status in (PhotoStatus.PENDING, PhotoStatus.APPROVED)
                     and not any(row.at_upload for row in rows))
        for_review = photo.status == PhotoStatus.PENDING and (review is None or review.model_version != model_version)
        if not (at_upload or for_review):
            return None
        if for_review and review is not None:
            if review.at_upload:  # still what the stumped bonus goes by
                review.for_review = False
                review.save(update_fields=["for_review"])
            else:
                review.delete()
                rows.remove(review)
        row = next((row for row in rows if row.model_version == model_version), None)
        if row is None:
            row = PhotoPrediction(photo_id=photo_id, model_version=model_version)
        if for_review or row.pk is None:
            # What the model said, as of now; a row kept for its other role keeps what it was stored with (the
            # label the photo had then is what the review's error rate is measured against).
            row.variant, row.label, row.confidence = variant, top[0][0], float(top[0][1])
            row.top = [[label, round(float(p), 4)] for label, p in top]
            row.photo_label_id, row.predicted_at = photo.label_id, timezone.now()
        row.at_upload = row.at_upload or at_upload
        row.for_review = row.for_review or for_review
        row.save()
        if at_upload:
            transaction.on_commit(lambda: photo_predicted.send(sender=PhotoPrediction, photo_id=photo_id))
    return row
