"""SchedulerJobRun and ProcessHeartbeat now belong to config (crowdlens 0001): state only, tables stay."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("training", "0004_process_heartbeat"), ("crowdlens", "0001_from_training")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[migrations.DeleteModel(name="SchedulerJobRun"), migrations.DeleteModel(name="ProcessHeartbeat")],
        ),
    ]
