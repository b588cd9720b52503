"""The project's own app: hooks that belong to no domain app (the cache table)."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_cache_table(sender, using, verbosity=1, **kwargs):
    """`migrate` also creates the database cache's table (when CACHES uses one).

    A post_migrate hook rather than a migration: createcachetable is Django's
    own, idempotent command that reads the table name from CACHES, so switching
    from Redis to the database later, or renaming the table, still gets a table
    on the next `migrate`; a migration would run once and freeze one name.
    """
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=max(0, verbosity - 1))


class CrowdlensConfig(AppConfig):
    name = "config"
    label = "crowdlens"
    verbose_name = "Crowdlens"

    def ready(self):
        post_migrate.connect(_create_cache_table, sender=self, dispatch_uid="crowdlens-create-cache-table")
