"""The model's guesses for pending photos (written by training's review_guesses job; read by the queue)."""

from __future__ import annotations

from collector.models import Photo, PhotoGuess


def photo_guess_record(*, photo_id: int, model_version: int, top: list[tuple[str, float]]) -> PhotoGuess | None:
    """Store the model's top guesses for one photo (replacing an older model's). None when the photo is gone."""
    photo = Photo.objects.filter(pk=photo_id).only("pk", "label_id").first()
    if photo is None or not top:
        return None
    guess, _ = PhotoGuess.objects.update_or_create(photo_id=photo_id, defaults={
        "model_version": model_version, "label": top[0][0], "confidence": float(top[0][1]),
        "top": [[label, round(float(p), 4)] for label, p in top], "photo_label_id": photo.label_id,
    })
    return guess
