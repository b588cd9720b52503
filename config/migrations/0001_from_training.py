"""SchedulerJobRun and ProcessHeartbeat move from training to config (label crowdlens), tables unchanged.

State only: the tables training's migrations made keep their names (db_table),
so nothing in the database changes; training's 0005 drops them from its state.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("training", "0004_process_heartbeat")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="SchedulerJobRun",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("job_id", models.CharField(max_length=100)),
                        ("scheduled_for", models.DateTimeField()),
                        ("started_at", models.DateTimeField(auto_now_add=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("exit_code", models.IntegerField(blank=True, null=True)),
                        ("output_tail", models.TextField(blank=True)),
                    ],
                    options={
                        "db_table": "training_schedulerjobrun",
                        "ordering": ["-scheduled_for"],
                        "constraints": [models.UniqueConstraint(fields=("job_id", "scheduled_for"),
                                                                name="scheduler_job_once")],
                    },
                ),
                migrations.CreateModel(
                    name="ProcessHeartbeat",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("kind", models.CharField(choices=[("scheduler", "Scheduler (runscheduler)"),
                                                           ("trainworker", "Training worker (trainworker)")],
                                                  max_length=16)),
                        ("host", models.CharField(max_length=200)),
                        ("pid", models.PositiveIntegerField()),
                        ("started_at", models.DateTimeField()),
                        ("beat_at", models.DateTimeField(db_index=True)),
                        ("stopped_at", models.DateTimeField(blank=True, null=True)),
                        ("state", models.CharField(blank=True, help_text="idle | training run #N | stopped",
                                                   max_length=200)),
                        ("devices", models.JSONField(blank=True, default=list,
                                                     help_text="TensorFlow's physical devices (workers)")),
                    ],
                    options={
                        "db_table": "training_processheartbeat",
                        "ordering": ["kind", "-beat_at"],
                        "constraints": [models.UniqueConstraint(fields=("kind", "host", "pid", "started_at"),
                                                                name="heartbeat_one_row_per_process")],
                    },
                ),
            ],
        ),
    ]
