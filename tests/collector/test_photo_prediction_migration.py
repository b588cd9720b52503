"""Migrations collector 0012 / training 0009: the review queue's guesses (collector.PhotoGuess) and the stumped
bonus's predictions (training.PhotoPrediction) become one table, collector.PhotoPrediction, keeping every row."""

from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.migration_steps import migrate_forward, state_at

BEFORE = [("collector", "0011_label_audit"), ("training", "0008_small_data_estimates")]
WHEN = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def old_state():
    """The database as it was with two tables, then migrated forward again whatever the test did."""
    yield from state_at(BEFORE)


@pytest.mark.django_db(transaction=True)
def test_guesses_and_predictions_become_one_table_with_their_roles(old_state):
    Label = old_state.get_model("collector", "Label")
    Photo = old_state.get_model("collector", "Photo")
    PhotoGuess = old_state.get_model("collector", "PhotoGuess")
    Prediction = old_state.get_model("training", "PhotoPrediction")
    tulip, daisy = Label.objects.create(slug="tulip", name="Tulip"), Label.objects.create(slug="daisy", name="Daisy")

    def photo(n, label):
        return Photo.objects.create(label=label, sha256=f"{n:064x}", phash="0" * 16, phash_band0=0, phash_band1=0,
                                    phash_band2=0, phash_band3=0, source_format="jpeg", byte_size=1, width=1, height=1,
                                    original_key=f"o{n}", training_key=f"t{n}", thumbnail_key=f"s{n}").pk

    both, guessed, predicted, newer = photo(1, tulip), photo(2, daisy), photo(3, tulip), photo(4, daisy)
    for pk, version, label in ((both, 3, "daisy"), (guessed, 3, "daisy"), (newer, 4, "tulip")):
        PhotoGuess.objects.create(photo_id=pk, model_version=version, label=label, confidence=0.9,
                                  top=[[label, 0.9], ["x", 0.1]], photo_label_id=Photo.objects.get(pk=pk).label_id)
    PhotoGuess.objects.update(computed_at=WHEN)
    for pk, version in ((both, 3), (predicted, 3), (newer, 3)):
        Prediction.objects.create(photo_id=pk, model_version=version, variant="int8", label="daisy", confidence=0.61)
    Prediction.objects.update(created_at=WHEN)

    migrate_forward()

    from collector.models import PhotoPrediction

    rows = {(p.photo_id, p.model_version): p for p in PhotoPrediction.objects.all()}
    assert {key: (p.at_upload, p.for_review) for key, p in rows.items()} == {
        (both, 3): (True, True), (guessed, 3): (False, True), (predicted, 3): (True, False),
        (newer, 3): (True, False), (newer, 4): (False, True)}
    assert (rows[both, 3].variant, rows[both, 3].top) == ("int8", [["daisy", 0.9], ["x", 0.1]])
    assert (rows[guessed, 3].variant, rows[newer, 4].label) == ("", "tulip"), "a guess never recorded its variant"
    assert (rows[predicted, 3].label, rows[predicted, 3].confidence, rows[predicted, 3].top) == \
        ("daisy", 0.61, [["daisy", 0.61]])
    assert rows[predicted, 3].photo_label.slug == "tulip"
    assert {p.predicted_at for p in rows.values()} == {WHEN}
    tables = connection.introspection.table_names()
    assert "collector_photoguess" not in tables and "training_photoprediction" not in tables

    # And back: each role returns to its own table.
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    guesses = old.get_model("collector", "PhotoGuess").objects.all()
    assert {(g.photo_id, g.model_version, g.label, g.computed_at) for g in guesses} == {
        (both, 3, "daisy", WHEN), (guessed, 3, "daisy", WHEN), (newer, 4, "tulip", WHEN)}
    predictions = old.get_model("training", "PhotoPrediction").objects.all()
    assert {(p.photo_id, p.model_version, p.variant, p.label, p.created_at) for p in predictions} == {
        (both, 3, "int8", "daisy", WHEN), (predicted, 3, "int8", "daisy", WHEN), (newer, 3, "int8", "daisy", WHEN)}
