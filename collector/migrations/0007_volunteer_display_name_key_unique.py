"""Step 2 of 2 (see 0006): the key is unique and replaces the case-insensitive constraint of 0004.

A separate migration, so that on PostgreSQL the rows written by 0006 are
committed before the table is altered."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("collector", "0006_volunteer_display_name_key"),
    ]

    operations = [
        migrations.AlterField(
            model_name="volunteer",
            name="display_name_key",
            field=models.CharField(editable=False, max_length=720, unique=True),
        ),
        migrations.RemoveConstraint(
            model_name="volunteer",
            name="volunteer_display_name_ci_unique",
        ),
    ]
