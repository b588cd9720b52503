"""manage.py photos_import DIR --volunteer NAME [--approve]: bootstrap from a labelled folder tree.

DIR/<label>/* (subfolders of a label folder count too) goes through the same
validation as an upload (collector.services.photo_create): format by content,
pixel limit, upright metadata-free derivatives, near-duplicate flagging.
photo_create recognises bytes the volunteer already has, so a rerun (or a
second copy running at the same time) imports nothing twice, and the command
can be stopped and restarted at any point.

The volunteer becomes a bootstrap account (collector.services.volunteer_mark_bootstrap):
an imported folder is data, not anyone's work on the challenges, so its photos
train models but earn no points and the account never appears on a
leaderboard. An account a person signs in with to take part is refused; the
import goes to an account of its own (--create-volunteer).

Exit status: 0 when the tree was processed, even if some files were refused
(they are listed with the reason); non-zero only on fatal errors (no such
folder or volunteer, unknown labels, storage down).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from collector import selectors, services
from collector.lib.names import display_name_key
from collector.models import Label, PhotoStatus, Volunteer
from config.domain_errors import DomainError, StorageUnavailable
from config.progress import progress_bar

User = get_user_model()


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


class Command(BaseCommand):
    help = "Import photos from DIR/<label>/* as one volunteer, through the upload validation. Safe to rerun."

    def add_arguments(self, parser):
        parser.add_argument("dir", help="Folder with one subfolder per label (its name is the label's slug)")
        parser.add_argument("--volunteer", required=True, metavar="NAME",
                            help="Display name (or username) of the account the photos are credited to; it becomes "
                                 "a bootstrap account (its photos earn no points, it is on no leaderboard)")
        parser.add_argument("--approve", action="store_true",
                            help="Mark the imported photos approved (a labelled set you already trust)")
        parser.add_argument("--operator", metavar="USERNAME",
                            help="With --approve: the reviewer recorded as approving (default: the volunteer account)")
        parser.add_argument("--create-labels", action="store_true",
                            help="Create labels for folders that have none (otherwise unknown folders are an error)")
        parser.add_argument("--create-volunteer", action="store_true",
                            help="Register the volunteer if there is no such account (with training consent)")

    def handle(self, *args, dir: str, volunteer: str, approve: bool, operator: str | None, create_labels: bool,
               create_volunteer: bool, verbosity: int = 1, **options):
        root = Path(dir)
        if not root.is_dir():
            raise CommandError(f"No such folder: {root}")
        if operator and not approve:
            raise CommandError("--operator only makes sense with --approve")
        user = self._volunteer_user(volunteer, create=create_volunteer)
        approver = self._approver(operator, user) if approve else None

        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        stray = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
        if not folders:
            raise CommandError(f"{root} has no label folders: expected {root}/<label>/<photo files>")
        slugs = self._labels(folders, create=create_labels)
        self._mark_bootstrap(user)
        work = [
            (path, slugs[folder.name])
            for folder in folders
            for path in sorted(folder.rglob("*"))
            if path.is_file() and _visible(path, folder)
        ]

        imported: Counter[str] = Counter()
        skipped, rejected, still_pending = 0, [], 0
        created_now: set[int] = set()  # photos this run created: a second file with their bytes is a duplicate
        duplicates: list[tuple[Path, int]] = []
        bar = progress_bar(work, unit="photo", desc="Importing", file=getattr(self.stderr, "_out", sys.stderr),
                   disable=verbosity == 0 or not work)
        for path, slug in bar:
            rel = path.relative_to(root)
            try:
                size = path.stat().st_size
                if size > settings.PHOTO_MAX_BYTES:
                    rejected.append((rel, f"{size} bytes is over PHOTO_MAX_BYTES ({settings.PHOTO_MAX_BYTES})"))
                    continue
                with path.open("rb") as handle:
                    result = services.photo_create(
                        user=user, image_file=File(handle, name=path.name), label_slug=slug, auto_approve_by=approver
                    )
            except StorageUnavailable as exc:
                bar.close()
                self._report(imported, skipped, duplicates, rejected, still_pending, approve)
                raise CommandError(f"{exc.message} Stopped at {rel}; rerun to continue.") from None
            except DomainError as exc:  # refused by a rule (format, size, label...): the next file
                rejected.append((rel, exc.message))
                continue
            except OSError as exc:
                rejected.append((rel, f"cannot read: {exc.strerror or exc}"))
                continue
            if result.created:
                imported[slug] += 1
                created_now.add(result.photo.pk)
            elif result.photo.pk in created_now:
                duplicates.append((rel, result.photo.pk))
            else:
                skipped += 1
                if approve and result.photo.status == PhotoStatus.PENDING:
                    still_pending += 1
        bar.close()
        for name in stray:
            rejected.append((Path(name), "not inside a label folder"))
        self._report(imported, skipped, duplicates, rejected, still_pending, approve)

    def _mark_bootstrap(self, user) -> None:
        try:
            changed = services.volunteer_mark_bootstrap(user=user)
        except DomainError as exc:
            raise CommandError(f"{exc.message} Nothing was imported.") from None
        if changed:
            self.stdout.write(f"{user.volunteer.display_name} is a bootstrap account now: its photos train models "
                              "but earn no points, and it never appears on a leaderboard.")

    def _volunteer_user(self, name: str, *, create: bool):
        profile = Volunteer.objects.select_related("user").filter(display_name_key=display_name_key(name)).first()
        if profile is not None:
            return profile.user
        user = User.objects.filter(username__iexact=name).first()
        if user is not None:
            services.volunteer_get_or_create_for_user(user=user)
            return user
        if not create:
            raise CommandError(f"No volunteer or user named {name!r}. Register one, or pass --create-volunteer.")
        try:
            profile, _ = services.volunteer_register(display_name=name, consent_training=True)
        except DomainError as exc:
            raise CommandError(f"Cannot create volunteer {name!r}: {exc.message}") from None
        self.stdout.write(f"Created volunteer {profile.display_name} (no password: it only owns these photos).")
        return profile.user

    def _approver(self, operator: str | None, volunteer_user):
        if not operator:
            return volunteer_user
        user = User.objects.filter(username=operator).first()
        if user is None:
            raise CommandError(f"No user named {operator!r} (--operator)")
        if not selectors.user_is_reviewer(user):
            raise CommandError(f"{operator!r} may not review photos (needs collector.review_photo)")
        return user

    def _labels(self, folders: list[Path], *, create: bool) -> dict[str, str]:
        """Folder name -> label slug; every label must exist and be active (or be created)."""
        slugs = {folder.name: slugify(folder.name) for folder in folders}
        bad = sorted(name for name, slug in slugs.items() if not slug)
        if bad:
            raise CommandError("Folder names that make no label slug: " + ", ".join(bad))
        existing = {label.slug: label for label in Label.objects.filter(slug__in=slugs.values())}
        inactive = sorted(slug for slug, label in existing.items() if not label.active)
        if inactive:
            raise CommandError("These labels are inactive; activate them in the admin first: " + ", ".join(inactive))
        missing = sorted(set(slugs.values()) - existing.keys())
        if missing and not create:
            raise CommandError(
                "No label for these folders: " + ", ".join(missing)
                + ". Load them with labels_import, or pass --create-labels. Nothing was imported."
            )
        if missing:
            services.labels_import(text="\n".join(missing))
            self.stdout.write("Created labels: " + ", ".join(missing))
        return slugs

    def _report(self, imported: Counter, skipped: int, duplicates: list, rejected: list, still_pending: int,
                approve: bool) -> None:
        total = sum(imported.values())
        state = "approved" if approve else "pending review"
        self.stdout.write(f"Imported {total} photo{'s' if total != 1 else ''} ({state}); "
                          f"{skipped} already imported (skipped); "
                          f"{len(duplicates)} duplicate{'s' if len(duplicates) != 1 else ''} inside the folder; "
                          f"{len(rejected)} rejected.")
        for slug, count in sorted(imported.items()):
            self.stdout.write(f"  {slug}: {count}")
        for rel, photo_id in duplicates:
            self.stdout.write(f"  duplicate {rel}: the same bytes as another file of this folder (photo {photo_id})")
        if still_pending:
            self.stdout.write(f"{still_pending} of the already imported photos are still pending review "
                              "(imported earlier without --approve): review them in the admin.")
        for rel, reason in rejected:
            self.stdout.write(f"  rejected {rel}: {reason}")
