"""manage.py dataset_export OUT.zip [--originals] [--label SLUG ...]: the approved photos, never locked in.

Layout (torchvision ImageFolder, Keras image_dataset_from_directory):

    <label>/<photo id>.jpg     the training derivative (upright, no metadata), or
    <label>/<photo id>.<ext>   the original upload with --originals (as received: may carry EXIF/GPS)
    manifest.csv               id, label, sha256, volunteer, captured_at, then volunteer_id, approved_at,
                               width, height, file, file_sha256
    labels.txt                 the label slugs in sorted order = ImageFolder's class indices

The zip is written to a temporary file next to OUT and renamed over OUT only
when complete, so OUT is either the previous export or the new one, never
half of one. Photos approved after the command starts are left for the next
export (one consistent cut-off).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from collector import selectors, storage
from collector.models import Label
from config.domain_errors import StorageUnavailable
from config.progress import progress_bar

MANIFEST_FIELDS = ["id", "label", "sha256", "volunteer", "captured_at", "volunteer_id", "approved_at", "width",
                   "height", "file", "file_sha256"]
CHUNK = 1024 * 1024


class Command(BaseCommand):
    help = "Write the approved photos to OUT.zip in ImageFolder layout with manifest.csv."

    def add_arguments(self, parser):
        parser.add_argument("out", help="The zip file to write (replaced atomically if it exists)")
        parser.add_argument("--originals", action="store_true",
                            help="Export the original uploads instead of the training derivatives. Originals "
                                 "keep their EXIF metadata, GPS included: do not publish such an export.")
        parser.add_argument("--label", action="append", default=[], metavar="SLUG",
                            help="Only these labels (repeatable)")
        parser.add_argument("--skip-missing", action="store_true",
                            help="Leave out photos whose file is missing from storage (default: stop with an error)")

    def handle(self, *args, out: str, originals: bool, label: list[str], skip_missing: bool, verbosity: int = 1,
               **options):
        target = Path(out)
        if target.is_dir():
            raise CommandError(f"{target} is a folder; give the path of the zip file to write")
        if not target.parent.is_dir():
            raise CommandError(f"No such folder: {target.parent}")
        cutoff = timezone.now()
        photos = selectors.photos_approved(up_to=cutoff).select_related("volunteer__volunteer")
        if label:
            unknown = sorted(set(label) - set(Label.objects.filter(slug__in=label).values_list("slug", flat=True)))
            if unknown:
                raise CommandError("No such label: " + ", ".join(unknown))
            photos = photos.filter(label__slug__in=label)
        if originals:
            photos = photos.exclude(original_key="")
        photos = photos.order_by("label__slug", "id")
        total = photos.count()

        handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".part",
                                             delete=False)
        tmp = Path(handle.name)
        try:
            with handle:
                with zipfile.ZipFile(handle, "w", allowZip64=True) as archive:
                    written, missing, labels = self._write(archive, photos, total, originals, skip_missing,
                                                           verbosity)
                handle.flush()
                os.fsync(handle.fileno())  # on disk before the rename makes it the export
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)  # atomic on one filesystem: readers see the old or the new zip
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        size = target.stat().st_size
        self.stdout.write(f"Wrote {target}: {written} photo{'s' if written != 1 else ''} in {len(labels)} "
                          f"label{'s' if len(labels) != 1 else ''} ({size / 1e6:.1f} MB), "
                          f"{'originals' if originals else 'training derivatives'}, approved up to "
                          f"{cutoff:%Y-%m-%d %H:%M:%S %Z}.")
        if missing:
            self.stdout.write(f"Left out {len(missing)} photo(s) whose file is missing: "
                              + ", ".join(f"#{pk}" for pk in missing))

    def _write(self, archive: zipfile.ZipFile, photos, total: int, originals: bool, skip_missing: bool,
               verbosity: int):
        manifest = io.StringIO()
        rows = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        rows.writeheader()
        labels: set[str] = set()
        written, missing = 0, []
        bar = progress_bar(total=total, unit="photo", desc="Exporting", file=getattr(self.stderr, "_out", sys.stderr),
                   disable=verbosity == 0 or total == 0)
        for photo in photos.iterator(chunk_size=500):
            key = photo.original_key if originals else photo.training_key
            suffix = PurePosixPath(key).suffix.lower() or ".jpg"
            arcname = f"{photo.label.slug}/{photo.pk}{suffix}"
            stamp = timezone.localtime(photo.approved_at or photo.created_at)
            info = zipfile.ZipInfo(arcname, date_time=max(stamp.timetuple()[:6], (1980, 1, 1, 0, 0, 0)))
            info.compress_type = zipfile.ZIP_STORED  # JPEG/PNG/WebP/HEIC are compressed already
            try:
                source, first = self._open(key)
            except FileNotFoundError:
                if not skip_missing:
                    raise CommandError(
                        f"Photo #{photo.pk}: its file {key} is missing from storage. Nothing was written; "
                        "rerun with --skip-missing to leave such photos out."
                    ) from None
                missing.append(photo.pk)
                bar.update(1)
                continue
            digest = hashlib.sha256(first)
            try:
                with source, archive.open(info, "w", force_zip64=True) as dest:
                    dest.write(first)
                    for chunk in iter(lambda: source.read(CHUNK), b""):
                        digest.update(chunk)
                        dest.write(chunk)
            except storage.STORAGE_ERRORS as exc:
                raise CommandError(f"Reading {key} from storage failed ({exc}). Nothing was written.") from None
            labels.add(photo.label.slug)
            rows.writerow({
                "id": photo.pk,
                "label": photo.label.slug,
                "sha256": photo.sha256,
                "volunteer": self._volunteer_name(photo),
                "captured_at": photo.captured_at.isoformat() if photo.captured_at else "",
                "volunteer_id": photo.volunteer_id or "",
                "approved_at": photo.approved_at.isoformat() if photo.approved_at else "",
                "width": photo.width,
                "height": photo.height,
                "file": arcname,
                "file_sha256": digest.hexdigest(),
            })
            written += 1
            bar.update(1)
        bar.close()
        archive.writestr(zipfile.ZipInfo("manifest.csv", date_time=timezone.localtime().timetuple()[:6]),
                         manifest.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(zipfile.ZipInfo("labels.txt", date_time=timezone.localtime().timetuple()[:6]),
                         "".join(f"{slug}\n" for slug in sorted(labels)), compress_type=zipfile.ZIP_DEFLATED)
        return written, missing, labels

    @staticmethod
    def _open(key: str):
        """The open file and its first chunk. S3 only says a key is missing on the first read."""
        try:
            source = storage.open_file(key)
            return source, source.read(CHUNK)
        except FileNotFoundError:
            raise
        except StorageUnavailable as exc:
            if _not_found(exc.__cause__):
                raise FileNotFoundError(key) from None
            raise CommandError(f"{exc.message} Nothing was written.") from None
        except storage.STORAGE_ERRORS as exc:
            if _not_found(exc):
                raise FileNotFoundError(key) from None
            raise CommandError(f"Reading {key} from storage failed ({exc}). Nothing was written.") from None

    @staticmethod
    def _volunteer_name(photo) -> str:
        """The public name: the display name only where the volunteer agreed to public credit."""
        user = photo.volunteer
        if user is None:
            return ""
        profile = getattr(user, "volunteer", None)
        return profile.public_name if profile is not None else f"user #{user.pk}"


def _not_found(exc: BaseException | None) -> bool:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound")
