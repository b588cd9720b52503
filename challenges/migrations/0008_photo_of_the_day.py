"""Feature becomes PhotoOfTheDay: "feature" means one thing in the code, an embedding (training's feature store)."""

from django.conf import settings
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("challenges", "0007_point_reason_stumped"),
        ("collector", "0011_label_audit"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RenameModel(old_name="Feature", new_name="PhotoOfTheDay"),
        migrations.AlterModelOptions(
            name="photooftheday",
            options={"ordering": ["-featured_on", "-id"], "verbose_name": "photo of the day",
                     "verbose_name_plural": "photos of the day"},
        ),
    ]
