"""The stumped bonus's predictions (training.PhotoPrediction) move into collector.PhotoPrediction (collector 0012)
as rows marked at_upload; a guess of the same photo and version becomes one row in both roles. Then the table
is dropped: one table, one job (docs/decisions.md)."""

from django.db import migrations


def predictions_to_collector(apps, schema_editor):
    Old = apps.get_model("training", "PhotoPrediction")
    New = apps.get_model("collector", "PhotoPrediction")
    Photo = apps.get_model("collector", "Photo")
    olds = list(Old.objects.order_by("pk").iterator(chunk_size=1000))
    for start in range(0, len(olds), 1000):
        chunk = olds[start:start + 1000]
        guessed = {(row.photo_id, row.model_version): row
                   for row in New.objects.filter(photo_id__in=[old.photo_id for old in chunk])}
        labels = dict(Photo.objects.filter(pk__in=[old.photo_id for old in chunk]).values_list("pk", "label_id"))
        created = []
        for old in chunk:
            row = guessed.get((old.photo_id, old.model_version))
            if row is not None:  # the same version on the same file: the guess's answer is the prediction's
                row.at_upload = True
                row.variant = row.variant or old.variant
                row.save(update_fields=["at_upload", "variant"])
                continue
            created.append(New(photo_id=old.photo_id, model_version=old.model_version, variant=old.variant,
                               label=old.label, confidence=old.confidence, top=[[old.label, old.confidence]],
                               photo_label_id=labels[old.photo_id], at_upload=True, predicted_at=old.created_at))
        New.objects.bulk_create(created)


def predictions_to_training(apps, schema_editor):
    Old = apps.get_model("training", "PhotoPrediction")
    New = apps.get_model("collector", "PhotoPrediction")
    for row in New.objects.filter(at_upload=True).order_by("pk").iterator(chunk_size=1000):
        old = Old.objects.create(photo_id=row.photo_id, model_version=row.model_version, variant=row.variant,
                                 label=row.label, confidence=row.confidence)
        Old.objects.filter(pk=old.pk).update(created_at=row.predicted_at)  # auto_now_add set it to now


class Migration(migrations.Migration):

    dependencies = [
        ('collector', '0012_photo_prediction'),
        ('training', '0008_small_data_estimates'),
    ]

    operations = [
        migrations.RunPython(predictions_to_collector, predictions_to_training),
        migrations.DeleteModel(
            name='PhotoPrediction',
        ),
    ]
