"""Write docs/reference/ from the code (config.reference); --check only says which pages drifted."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from config import reference


class Command(BaseCommand):
    help = ("Write the reference pages in docs/reference/ (error codes, settings, commands, API) from the code "
            "that declares them. --check changes nothing and fails when a page differs.")

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Fail (exit 1) when a page differs; write nothing.")

    def handle(self, *args, check: bool = False, **options):
        if check:
            stale = reference.drift()
            if stale:
                raise CommandError(f"docs/reference/ is out of date: {', '.join(stale)}. "
                                   "Run `manage.py docs_reference` and commit the result.")
            self.stdout.write("docs/reference/ matches the code.")
            return
        changed = reference.write()
        self.stdout.write(f"Wrote {', '.join(changed)}." if changed else "docs/reference/ was already up to date.")
