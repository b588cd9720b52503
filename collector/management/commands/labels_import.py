"""manage.py labels_import FILE: load labels, one slug per line or CSV rows slug,name,description.

Rerunning is safe: existing labels keep their id, photos and targets; only a
changed name or description is updated. Nothing is written if any row is bad.
"""

from django.core.management.base import BaseCommand, CommandError

from collector import services


class Command(BaseCommand):
    help = "Load labels from FILE (one slug per line, or CSV: slug,name,description). Safe to rerun."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Text file: one slug per line, or CSV rows slug,name,description ('-' reads stdin)")

    def handle(self, *args, file: str, **options):
        text = self._read(file)
        try:
            result = services.labels_import(text=text)
        except ValueError as exc:
            raise CommandError(f"{file}: {exc}. Nothing was imported.") from None
        self.stdout.write(
            f"Labels: {result.created} created, {result.updated} updated, {result.unchanged} unchanged."
        )

    def _read(self, file: str) -> str:
        if file == "-":
            import sys

            return sys.stdin.read()
        try:
            with open(file, encoding="utf-8-sig") as handle:  # -sig: spreadsheets often save a BOM
                return handle.read()
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        except IsADirectoryError:
            raise CommandError(f"{file} is a directory, not a labels file") from None
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
