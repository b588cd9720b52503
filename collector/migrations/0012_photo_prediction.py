"""The model's prediction for a photo, one table (docs/decisions.md): collector.PhotoGuess (the review queue's
guesses) becomes collector.PhotoPrediction, each guess a row marked for_review. training 0009 then merges
training.PhotoPrediction (the stumped bonus's predictions) into it and drops that table."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def guesses_to_predictions(apps, schema_editor):
    PhotoGuess = apps.get_model("collector", "PhotoGuess")
    PhotoPrediction = apps.get_model("collector", "PhotoPrediction")
    batch = []
    for guess in PhotoGuess.objects.order_by("pk").iterator(chunk_size=1000):
        batch.append(PhotoPrediction(photo_id=guess.photo_id, model_version=guess.model_version, variant="",
                                     label=guess.label, confidence=guess.confidence, top=guess.top,
                                     photo_label_id=guess.photo_label_id, for_review=True,
                                     predicted_at=guess.computed_at))
        if len(batch) >= 1000:
            PhotoPrediction.objects.bulk_create(batch)
            batch = []
    PhotoPrediction.objects.bulk_create(batch)


def predictions_to_guesses(apps, schema_editor):
    PhotoGuess = apps.get_model("collector", "PhotoGuess")
    PhotoPrediction = apps.get_model("collector", "PhotoPrediction")
    for row in PhotoPrediction.objects.filter(for_review=True).order_by("pk").iterator(chunk_size=1000):
        guess = PhotoGuess.objects.create(photo_id=row.photo_id, model_version=row.model_version, label=row.label,
                                          confidence=row.confidence, top=row.top, photo_label_id=row.photo_label_id)
        PhotoGuess.objects.filter(pk=guess.pk).update(computed_at=row.predicted_at)  # auto_now set it to now


class Migration(migrations.Migration):

    dependencies = [
        ('collector', '0011_label_audit'),
    ]

    operations = [
        migrations.CreateModel(
            name='PhotoPrediction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('model_version', models.PositiveIntegerField(help_text='The published model version that predicted.')),
                ('variant', models.CharField(blank=True, help_text="The variant of the version's file that ran (empty: a review guess stored before the two tables were one, which did not record it).", max_length=16)),
                ('label', models.CharField(help_text='Its top label (a label slug).', max_length=64)),
                ('confidence', models.FloatField(help_text="The top label's probability, 0..1.")),
                ('top', models.JSONField(default=list, help_text='[[label slug, probability], ...], best first.')),
                ('at_upload', models.BooleanField(default=False, help_text='By the version in service at upload: the stumped bonus goes by it.')),
                ('for_review', models.BooleanField(default=False, help_text="The latest made while the photo was pending: the review queue's guess.")),
                ('predicted_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('photo', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='predictions', to='collector.photo')),
                ('photo_label', models.ForeignKey(help_text="The photo's label when the model predicted.", on_delete=django.db.models.deletion.PROTECT, related_name='+', to='collector.label')),
            ],
            options={
                'indexes': [models.Index(fields=['label', 'confidence'], name='prediction_label_confidence')],
                'constraints': [models.UniqueConstraint(fields=('photo', 'model_version'), name='prediction_once_per_version'), models.UniqueConstraint(condition=models.Q(('at_upload', True)), fields=('photo',), name='one_upload_prediction'), models.UniqueConstraint(condition=models.Q(('for_review', True)), fields=('photo',), name='one_review_prediction')],
            },
        ),
        migrations.RunPython(guesses_to_predictions, predictions_to_guesses),
        migrations.DeleteModel(
            name='PhotoGuess',
        ),
    ]
