"""For data-migration tests: the database as it was at some migrations, then forward again."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def state_at(before):
    """A fixture's body: migrate back to ``before`` and yield the apps as they were there; afterwards migrate
    forward to the latest migrations, whatever the test did."""
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    yield executor.loader.project_state(before).apps
    migrate_forward()


def migrate_forward():
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
