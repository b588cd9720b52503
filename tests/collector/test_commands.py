"""Operator commands end to end: labels_import, photos_import, dataset_export, reviewers_group."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from collector.models import Label, Photo, PhotoReview, PhotoStatus, StorageSweep
from collector.services import REVIEWERS_GROUP, volunteer_delete
from tests.conftest import stored_files
from tests.factories import image_bytes, make_label, make_photo, make_reviewer, make_volunteer

User = get_user_model()
ROOT = Path(__file__).resolve().parents[2]


def run(*args, **kwargs) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


# --- labels_import ---------------------------------------------------------


@pytest.mark.django_db
class TestLabelsImport:
    def test_it_loads_one_slug_per_line_and_is_safe_to_rerun(self, tmp_path):
        file = write(tmp_path / "labels.txt", "mug\nbanana\n\n# a comment\nkeys\n")
        out, _ = run("labels_import", str(file))
        assert "3 created" in out
        ids = dict(Label.objects.values_list("slug", "id"))
        assert set(ids) == {"mug", "banana", "keys"}
        assert Label.objects.get(slug="mug").name == "Mug"

        out, _ = run("labels_import", str(file))
        assert "0 created, 0 updated, 3 unchanged" in out
        assert dict(Label.objects.values_list("slug", "id")) == ids

    def test_it_loads_csv_with_names_and_descriptions(self, tmp_path):
        file = write(tmp_path / "labels.csv", "\ufeffslug,name,description\nmug,Coffee mug,\"Any mug, any angle\"\n")
        run("labels_import", str(file))
        mug = Label.objects.get(slug="mug")
        assert (mug.name, mug.description) == ("Coffee mug", "Any mug, any angle")

    def test_it_updates_a_changed_name_and_keeps_photos_and_targets(self, tmp_path):
        mug = make_label("mug", prototype_target=50)
        make_photo(label=mug)
        out, _ = run("labels_import", str(write(tmp_path / "l.csv", "mug,Mugs and cups\n")))
        assert "1 updated" in out
        mug.refresh_from_db()
        assert (mug.name, mug.prototype_target, mug.photos.count()) == ("Mugs and cups", 50, 1)

    def test_it_reads_stdin_for_a_dash(self, monkeypatch):
        monkeypatch.setattr(sys, "stdin", io.StringIO("mug\nkeys\n"))
        out, _ = run("labels_import", "-")
        assert "2 created" in out and Label.objects.filter(slug__in=["mug", "keys"]).count() == 2

    def test_it_refuses_a_missing_file(self, tmp_path):
        with pytest.raises(CommandError, match="No such file"):
            run("labels_import", str(tmp_path / "nope.txt"))

    @pytest.mark.parametrize("bad_row, message", [
        ("mug,Mug,A mug,extra", "Line 2: expected slug"),
        ("!!!", "Line 2: not a usable slug"),
        ("x" * 65, "Line 2: the slug is longer than 64"),
    ])
    def test_it_refuses_a_bad_row_and_imports_nothing(self, tmp_path, bad_row, message):
        file = write(tmp_path / "labels.csv", f"banana\n{bad_row}\nkeys\n")
        with pytest.raises(CommandError, match=message):
            run("labels_import", str(file))
        assert Label.objects.count() == 0

    def test_it_exits_non_zero_from_the_shell(self, tmp_path):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        result = subprocess.run([sys.executable, "manage.py", "labels_import", str(tmp_path / "nope.txt")],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert "No such file" in result.stderr


# --- photos_import ---------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    """DIR/<label>/*: two labels, three photos, a text file posing as a photo, macOS litter, a stray file."""
    root = tmp_path / "set"
    write(root / "mug" / "one.jpg", image_bytes(seed=1))
    write(root / "mug" / "two.png", image_bytes(seed=2, fmt="PNG"))
    write(root / "keys" / "sub" / "three.jpg", image_bytes(seed=3))
    write(root / "keys" / "readme.jpg", "<html>not a photo</html>")
    write(root / "keys" / ".DS_Store", b"\0\0\0\1Bud1")
    write(root / "notes.txt", "stray")
    return root


@pytest.fixture
def labels(db):
    return make_label("mug"), make_label("keys")


@pytest.mark.django_db
class TestPhotosImport:
    def test_it_imports_the_tree_as_pending_photos_and_reports(self, tree, labels, settings):
        volunteer = make_volunteer("importer")
        out, err = run("photos_import", str(tree), "--volunteer", "importer")
        assert ("Imported 3 photos (pending review); 0 already imported (skipped); 0 duplicates inside the folder; "
                "2 rejected.") in out
        assert "rejected keys/readme.jpg: The file is not a JPEG, PNG, WebP or HEIC/HEIF image." in out
        assert "rejected notes.txt: not inside a label folder" in out
        assert "100%" in err and "4/4" in err  # the progress bar over the four candidate files
        photos = Photo.objects.filter(volunteer=volunteer.user)
        assert sorted(photos.values_list("label__slug", flat=True)) == ["keys", "mug", "mug"]
        assert set(photos.values_list("status", flat=True)) == {PhotoStatus.PENDING}
        assert PhotoReview.objects.count() == 0
        assert len(stored_files(settings.MEDIA_ROOT)) == 3 * 3  # original, training copy, thumbnail each

    def test_it_imports_nothing_twice(self, tree, labels, settings):
        make_volunteer("importer")
        run("photos_import", str(tree), "--volunteer", "importer")
        files = stored_files(settings.MEDIA_ROOT)
        out, _ = run("photos_import", str(tree), "--volunteer", "importer")
        assert "Imported 0 photos (pending review); 3 already imported (skipped)" in out
        assert Photo.objects.count() == 3
        assert stored_files(settings.MEDIA_ROOT) == files

    def test_it_tells_duplicates_inside_the_folder_apart_from_already_imported(self, tree, labels):
        make_volunteer("importer")
        write(tree / "mug" / "copy-of-one.jpg", (tree / "mug" / "one.jpg").read_bytes())
        out, _ = run("photos_import", str(tree), "--volunteer", "importer")
        assert ("Imported 3 photos (pending review); 0 already imported (skipped); 1 duplicate inside the folder; "
                "2 rejected.") in out
        one = Photo.objects.get(label__slug="mug", byte_size=(tree / "mug" / "one.jpg").stat().st_size)
        assert f"duplicate mug/one.jpg: the same bytes as another file of this folder (photo {one.pk})" in out
        assert Photo.objects.count() == 3
        out, _ = run("photos_import", str(tree), "--volunteer", "importer")
        assert "Imported 0 photos (pending review); 4 already imported (skipped); 0 duplicates inside the folder" in out

    def test_it_makes_the_volunteer_a_bootstrap_account(self, tree, labels):
        volunteer = make_volunteer("importer")
        out, _ = run("photos_import", str(tree), "--volunteer", "importer", "--approve")
        assert "importer is a bootstrap account now: its photos train models but earn no points" in out
        volunteer.refresh_from_db()
        assert volunteer.is_bootstrap
        out, _ = run("photos_import", str(tree), "--volunteer", "importer", "--approve")
        assert "bootstrap account now" not in out  # said once

    def test_the_admin_lists_bootstrap_accounts_apart(self, tree, labels, admin_client):
        make_volunteer("importer")
        make_volunteer("maria", password="a-long-password-1")
        run("photos_import", str(tree), "--volunteer", "importer", "--approve")
        html = admin_client.get(reverse("admin:collector_volunteer_changelist") + "?is_bootstrap__exact=1").content.decode()
        assert ">importer<" in html and ">maria<" not in html

    def test_it_refuses_an_account_a_volunteer_signs_in_with(self, tree, labels):
        volunteer = make_volunteer("maria", password="a-long-password-1")
        with pytest.raises(CommandError, match="maria signs in as a volunteer.*--create-volunteer. Nothing was imported"):
            run("photos_import", str(tree), "--volunteer", "maria", "--approve")
        volunteer.refresh_from_db()
        assert not volunteer.is_bootstrap and Photo.objects.count() == 0

    def test_it_approves_with_an_audit_row(self, tree, labels):
        volunteer = make_volunteer("importer")
        out, _ = run("photos_import", str(tree), "--volunteer", "importer", "--approve")
        assert "Imported 3 photos (approved)" in out
        for photo in Photo.objects.all():
            assert photo.status == PhotoStatus.APPROVED and photo.approved_at is not None
            [row] = PhotoReview.objects.filter(photo=photo)
            assert (row.decision, row.reviewer, row.note) == ("approved", volunteer.user, "imported")

    def test_it_records_the_operator_as_approver(self, tree, labels):
        make_volunteer("importer")
        operator = make_reviewer("olga")
        run("photos_import", str(tree), "--volunteer", "importer", "--approve", "--operator", "olga")
        assert set(Photo.objects.values_list("reviewed_by", flat=True)) == {operator.pk}

    def test_it_refuses_an_operator_who_may_not_review(self, tree, labels):
        make_volunteer("importer")
        User.objects.create_user("nobody", password="x-pass-12345")
        with pytest.raises(CommandError, match="may not review"):
            run("photos_import", str(tree), "--volunteer", "importer", "--approve", "--operator", "nobody")
        assert Photo.objects.count() == 0

    def test_it_tells_which_still_wait_for_review_when_rerun_with_approve(self, tree, labels):
        make_volunteer("importer")
        run("photos_import", str(tree), "--volunteer", "importer")
        out, _ = run("photos_import", str(tree), "--volunteer", "importer", "--approve")
        assert "3 of the already imported photos are still pending review" in out

    def test_it_refuses_folders_without_a_label_and_imports_nothing(self, tree, db):
        make_label("mug")
        make_volunteer("importer")
        with pytest.raises(CommandError, match="No label for these folders: keys"):
            run("photos_import", str(tree), "--volunteer", "importer")
        assert Photo.objects.count() == 0

    def test_it_creates_missing_labels_when_asked(self, tree, db):
        make_volunteer("importer")
        out, _ = run("photos_import", str(tree), "--volunteer", "importer", "--create-labels")
        assert "Created labels: keys, mug" in out
        assert Photo.objects.filter(label__slug="keys").count() == 1

    def test_it_refuses_inactive_labels(self, tree, labels):
        Label.objects.filter(slug="keys").update(active=False)
        make_volunteer("importer")
        with pytest.raises(CommandError, match="inactive.*keys"):
            run("photos_import", str(tree), "--volunteer", "importer")

    def test_it_needs_an_existing_volunteer_unless_asked_to_create_one(self, tree, labels):
        with pytest.raises(CommandError, match="No volunteer or user named 'newbie'"):
            run("photos_import", str(tree), "--volunteer", "newbie")
        out, _ = run("photos_import", str(tree), "--volunteer", "newbie", "--create-volunteer")
        assert "Created volunteer newbie" in out
        assert Photo.objects.filter(volunteer__username="newbie").count() == 3
        assert User.objects.get(username="newbie").volunteer.consent_training

    def test_it_refuses_a_missing_folder(self, tmp_path, labels):
        make_volunteer("importer")
        with pytest.raises(CommandError, match="No such folder"):
            run("photos_import", str(tmp_path / "nope"), "--volunteer", "importer")

    def test_it_applies_the_upload_size_limit(self, tree, labels, settings):
        make_volunteer("importer")
        settings.PHOTO_MAX_BYTES = 2048  # every synthetic photo is bigger
        out, _ = run("photos_import", str(tree), "--volunteer", "importer")
        assert "Imported 0 photos" in out and "over PHOTO_MAX_BYTES (2048)" in out
        assert Photo.objects.count() == 0

    def test_it_stops_with_an_error_when_storage_is_down(self, tree, labels, settings, tmp_path):
        make_volunteer("importer")
        blocker = write(tmp_path / "not-a-folder", "x")
        settings.STORAGES = {**settings.STORAGES, "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker / "media")}}}
        with pytest.raises(CommandError, match="storage is unavailable.*rerun to continue"):
            run("photos_import", str(tree), "--volunteer", "importer")
        assert Photo.objects.count() == 0

    def test_it_stores_upright_copies_without_metadata(self, tmp_path, labels, settings):
        """The same validation as an upload: EXIF orientation applied, GPS gone from the derivatives."""
        make_volunteer("importer")
        image = Image.open(io.BytesIO(image_bytes(size=(400, 200), seed=9)))
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90° clockwise to display
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0)}  # GPS
        data = io.BytesIO()
        image.save(data, "JPEG", exif=exif)
        write(tmp_path / "set" / "mug" / "rotated.jpg", data.getvalue())
        run("photos_import", str(tmp_path / "set"), "--volunteer", "importer")
        photo = Photo.objects.get()
        assert (photo.width, photo.height) == (200, 400)
        derivative = Image.open(Path(settings.MEDIA_ROOT) / photo.training_key)
        assert derivative.height > derivative.width
        assert not derivative.getexif()


# --- dataset_export --------------------------------------------------------


def read_zip(path: Path) -> tuple[dict[str, bytes], list[dict[str, str]]]:
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = list(csv.DictReader(io.StringIO(files["manifest.csv"].decode())))
    return files, manifest


@pytest.fixture
def dataset(db):
    """Approved photos in two labels, plus pending, rejected and withdrawn ones that must stay out."""
    mug, keys = make_label("mug"), make_label("keys")
    credited = make_volunteer("carla", consent_public_credit=True)
    private = make_volunteer("pia", consent_public_credit=False)
    originals = {}
    approved = []
    for volunteer, label, seed in [(credited, mug, 11), (private, mug, 12), (credited, keys, 13)]:
        data = image_bytes(seed=seed, size=(640, 480))
        photo = make_photo(volunteer=volunteer, label=label, image=data, status=PhotoStatus.APPROVED)
        originals[photo.pk] = data
        approved.append(photo)
    Photo.objects.filter(pk=approved[0].pk).update(captured_at="2026-05-01T10:00:00Z")
    make_photo(volunteer=credited, label=mug)  # pending
    make_photo(volunteer=credited, label=keys, status=PhotoStatus.REJECTED)
    leaver = make_volunteer("leaver")
    make_photo(volunteer=leaver, label=mug, status=PhotoStatus.APPROVED)
    volunteer_delete(user=leaver.user)  # withdrawn
    return {"approved": approved, "originals": originals, "credited": credited, "private": private}


@pytest.mark.django_db
class TestDatasetExport:
    def test_it_writes_approved_photos_in_imagefolder_layout_with_a_manifest(self, tmp_path, dataset):
        out = tmp_path / "out.zip"
        stdout, err = run("dataset_export", str(out))
        assert "3 photos in 2 labels" in stdout and "100%" in err
        files, manifest = read_zip(out)
        a, b, c = dataset["approved"]
        assert set(files) == {f"mug/{a.pk}.jpg", f"mug/{b.pk}.jpg", f"keys/{c.pk}.jpg", "manifest.csv", "labels.txt"}
        assert files["labels.txt"] == b"keys\nmug\n"
        assert list(manifest[0])[:5] == ["id", "label", "sha256", "volunteer", "captured_at"]
        rows = {int(r["id"]): r for r in manifest}
        assert set(rows) == {a.pk, b.pk, c.pk}
        for photo in (a, b, c):
            photo.refresh_from_db()
            row = rows[photo.pk]
            assert (row["label"], row["sha256"], row["file"]) == (photo.label.slug, photo.sha256,
                                                                  f"{photo.label.slug}/{photo.pk}.jpg")
            assert row["file_sha256"] == hashlib.sha256(files[row["file"]]).hexdigest()
            image = Image.open(io.BytesIO(files[row["file"]]))
            assert image.format == "JPEG" and min(image.size) == 256  # the training derivative
        assert rows[a.pk]["captured_at"].startswith("2026-05-01T10:00:00")
        assert rows[a.pk]["volunteer"] == "carla"  # consented to public credit
        assert rows[b.pk]["volunteer"] == f"Volunteer #{dataset['private'].user_id}"  # did not

    def test_it_exports_the_originals_when_asked(self, tmp_path, dataset):
        out = tmp_path / "originals.zip"
        run("dataset_export", str(out), "--originals")
        files, manifest = read_zip(out)
        for row in manifest:
            data = files[row["file"]]
            assert data == dataset["originals"][int(row["id"])]
            assert hashlib.sha256(data).hexdigest() == row["sha256"] == row["file_sha256"]

    def test_it_exports_only_the_labels_asked_for(self, tmp_path, dataset):
        out = tmp_path / "keys.zip"
        run("dataset_export", str(out), "--label", "keys")
        files, manifest = read_zip(out)
        assert [r["label"] for r in manifest] == ["keys"] and files["labels.txt"] == b"keys\n"
        with pytest.raises(CommandError, match="No such label: nope"):
            run("dataset_export", str(tmp_path / "x.zip"), "--label", "nope")

    def test_it_replaces_the_zip_atomically_and_leaves_no_temporary_file(self, tmp_path, dataset, settings):
        out = tmp_path / "out.zip"
        run("dataset_export", str(out))
        before = out.read_bytes()
        victim = dataset["approved"][1]
        (Path(settings.MEDIA_ROOT) / victim.training_key).unlink()
        with pytest.raises(CommandError, match=f"Photo #{victim.pk}: its file .* is missing"):
            run("dataset_export", str(out))
        assert out.read_bytes() == before  # the previous export, untouched
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []

        stdout, _ = run("dataset_export", str(out), "--skip-missing")
        assert f"Left out 1 photo(s) whose file is missing: #{victim.pk}" in stdout
        files, manifest = read_zip(out)
        assert victim.pk not in {int(r["id"]) for r in manifest}
        assert len(manifest) == 2
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []

    def test_it_writes_an_empty_dataset_with_a_header(self, tmp_path, db):
        out = tmp_path / "empty.zip"
        stdout, _ = run("dataset_export", str(out))
        assert "0 photos in 0 labels" in stdout
        files, manifest = read_zip(out)
        assert manifest == [] and files["manifest.csv"].decode().startswith("id,label,sha256,volunteer,captured_at")

    def test_it_refuses_an_output_in_a_missing_folder(self, tmp_path, db):
        with pytest.raises(CommandError, match="No such folder"):
            run("dataset_export", str(tmp_path / "nope" / "out.zip"))

    def test_it_exports_what_photos_import_brought_in(self, tree, labels, tmp_path):
        """The round trip an operator does first: a labelled folder in, the same dataset out."""
        make_volunteer("importer")
        run("photos_import", str(tree), "--volunteer", "importer", "--approve")
        out = tmp_path / "round.zip"
        run("dataset_export", str(out), "--originals")
        files, manifest = read_zip(out)
        sources = {hashlib.sha256(p.read_bytes()).hexdigest(): p.relative_to(tree).parts[0]
                   for p in tree.rglob("*") if p.is_file()}
        assert len(manifest) == 3
        for row in manifest:
            assert sources[row["sha256"]] == row["label"]


@pytest.mark.django_db
class TestCommandsOnS3:
    """The same commands against S3 (moto's server, over HTTP): import into the bucket, export out of it."""

    def test_it_imports_into_the_bucket_and_exports_from_it(self, s3_storage, tree, labels, tmp_path):
        make_volunteer("importer")
        run("photos_import", str(tree), "--volunteer", "importer", "--approve")
        keys = s3_storage.keys()
        assert len(keys) == 3 * 3
        assert set(keys) == {k for p in Photo.objects.all() for k in p.storage_keys}

        out = tmp_path / "s3.zip"
        run("dataset_export", str(out), "--originals")
        files, manifest = read_zip(out)
        assert len(manifest) == 3
        for row in manifest:
            photo = Photo.objects.get(pk=row["id"])
            assert files[row["file"]] == s3_storage.read(photo.original_key)

    def test_it_notices_a_key_missing_from_the_bucket(self, s3_storage, tree, labels, tmp_path):
        make_volunteer("importer")
        run("photos_import", str(tree), "--volunteer", "importer", "--approve")
        victim = Photo.objects.order_by("id").first()
        s3_storage.client.delete_object(Bucket=s3_storage.bucket, Key=victim.training_key)
        out = tmp_path / "s3.zip"
        with pytest.raises(CommandError, match=f"Photo #{victim.pk}: its file .* is missing"):
            run("dataset_export", str(out))
        assert not out.exists() and list(tmp_path.glob(".s3.zip.*")) == []
        stdout, _ = run("dataset_export", str(out), "--skip-missing")
        assert f"#{victim.pk}" in stdout and len(read_zip(out)[1]) == 2


# --- reviewers_group -------------------------------------------------------


@pytest.mark.django_db
class TestReviewersGroupCommand:
    def test_it_adds_reviewers_and_makes_them_staff(self):
        User.objects.create_user("ann", password="x-pass-12345")
        out, _ = run("reviewers_group", "--add", "ann")
        ann = User.objects.get(username="ann")
        assert ann.is_staff and ann.has_perm("collector.review_photo")
        assert "Members (1): ann" in out
        run("reviewers_group", "--remove", "ann")
        assert not User.objects.get(username="ann").has_perm("collector.review_photo")

    def test_it_puts_back_a_removed_permission(self):
        group = Group.objects.get(name=REVIEWERS_GROUP)
        group.permissions.remove(Permission.objects.get(codename="review_photo"))
        run("reviewers_group")
        assert group.permissions.filter(codename="review_photo").exists()

    def test_it_refuses_unknown_users_and_changes_nothing(self):
        User.objects.create_user("ann", password="x-pass-12345")
        with pytest.raises(CommandError, match="No such user: ghost. To create a new reviewer, add --create") as exc:
            run("reviewers_group", "--add", "ann", "ghost")
        assert "CROWDLENS_REVIEWER_PASSWORD" in str(exc.value)
        assert not User.objects.get(username="ann").groups.exists()

    def test_it_creates_a_new_reviewer_with_the_password_from_the_environment(self, monkeypatch, client):
        monkeypatch.setenv("CROWDLENS_REVIEWER_PASSWORD", "correct-horse-battery-9")
        out, _ = run("reviewers_group", "--add", "rita", "--create", "--email", "rita@example.org")
        assert "Created staff user rita." in out and "Members (1): rita" in out
        rita = User.objects.get(username="rita")
        assert rita.is_staff and not rita.is_superuser and rita.email == "rita@example.org"
        assert rita.has_perm("collector.review_photo")
        # She can sign in to the admin and open the review queue with that password.
        assert client.login(username="rita", password="correct-horse-battery-9")
        assert client.get(reverse("admin:collector_photo_changelist")).status_code == 200

    def test_it_asks_for_the_password_at_a_terminal(self, monkeypatch):
        monkeypatch.delenv("CROWDLENS_REVIEWER_PASSWORD", raising=False)
        answers = iter(["correct-horse-battery-9", "correct-horse-battery-9"])
        monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
        out, _ = run("reviewers_group", "--add", "rita", "--create", stdin=_Tty())
        assert "Created staff user rita." in out
        assert User.objects.get(username="rita").check_password("correct-horse-battery-9")

    def test_it_refuses_to_create_without_a_password_and_changes_nothing(self, monkeypatch):
        monkeypatch.delenv("CROWDLENS_REVIEWER_PASSWORD", raising=False)
        with pytest.raises(CommandError, match="No password for the new user rita: set CROWDLENS_REVIEWER_PASSWORD"):
            run("reviewers_group", "--add", "rita", "--create", stdin=io.StringIO(""))
        assert not User.objects.filter(username="rita").exists()

    def test_it_refuses_a_weak_password_and_changes_nothing(self, monkeypatch):
        User.objects.create_user("ann", password="x-pass-12345")
        monkeypatch.setenv("CROWDLENS_REVIEWER_PASSWORD", "12345")
        with pytest.raises(CommandError, match="The password for rita is refused: This password is too short"):
            run("reviewers_group", "--add", "ann", "rita", "--create")
        assert not User.objects.filter(username="rita").exists()
        assert not User.objects.get(username="ann").groups.exists()

    def test_it_refuses_two_differing_passwords(self, monkeypatch):
        monkeypatch.delenv("CROWDLENS_REVIEWER_PASSWORD", raising=False)
        answers = iter(["correct-horse-battery-9", "correct-horse-battery-8"])
        monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
        with pytest.raises(CommandError, match="The two passwords for rita differ"):
            run("reviewers_group", "--add", "rita", "--create", stdin=_Tty())
        assert not User.objects.filter(username="rita").exists()

    def test_it_shares_no_environment_password_between_two_new_accounts(self, monkeypatch):
        monkeypatch.setenv("CROWDLENS_REVIEWER_PASSWORD", "correct-horse-battery-9")
        with pytest.raises(CommandError, match="one new reviewer per run"):
            run("reviewers_group", "--add", "rita", "rob", "--create")
        assert not User.objects.filter(username__in=["rita", "rob"]).exists()

    def test_it_refuses_a_name_taken_in_another_letter_case(self, monkeypatch):
        make_volunteer("Rita")
        monkeypatch.setenv("CROWDLENS_REVIEWER_PASSWORD", "correct-horse-battery-9")
        with pytest.raises(CommandError, match="The user name 'rita' is taken"):
            run("reviewers_group", "--add", "rita", "--create")
        assert not User.objects.filter(username="rita").exists()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- storage_sweep ---------------------------------------------------------


def age(path: Path, hours: float) -> None:
    import time

    then = time.time() - hours * 3600
    os.utime(path, (then, then))


@pytest.mark.django_db
class TestStorageSweep:
    @pytest.fixture
    def media(self, settings):
        photo = make_photo()
        root = Path(settings.MEDIA_ROOT)
        for key in photo.storage_keys:
            age(root / key, 48)
        old = write(root / "photos/2026/01/01/deadbeef/original.jpg", image_bytes(seed=5))
        age(old, 48)
        fresh = write(root / "photos/2026/01/02/cafe/original.jpg", image_bytes(seed=6))  # an upload in flight
        return {"photo": photo, "root": root, "old": old, "fresh": fresh}

    def test_it_reports_orphans_without_deleting(self, media):
        out, _ = run("storage_sweep")
        assert "5 files checked: 1 orphan(s)" in out and "1 unreferenced but younger than 24 h" in out
        assert "orphan photos/2026/01/01/deadbeef/original.jpg" in out
        assert media["old"].exists() and media["fresh"].exists()

    def test_it_deletes_old_orphans_only(self, media):
        out, _ = run("storage_sweep", "--delete")
        assert "Deleted 1." in out
        assert not media["old"].exists() and media["fresh"].exists()
        assert all((media["root"] / key).exists() for key in media["photo"].storage_keys)
        out, _ = run("storage_sweep", "--delete")  # rerun: nothing left to do
        assert "0 orphan(s)" in out

    def test_each_sweep_is_recorded_for_the_admin(self, media, admin_client):
        run("storage_sweep")
        sweep = StorageSweep.objects.get()
        assert (sweep.deleting, sweep.files_checked, sweep.orphans, sweep.young_left_alone, sweep.deleted) == \
            (False, 5, 1, 1, 0)
        assert sweep.orphan_keys == ["photos/2026/01/01/deadbeef/original.jpg"] and sweep.finished_at
        page = admin_client.get(reverse("admin:collector_storagesweep_change", args=[sweep.pk])).content.decode()
        assert "photos/2026/01/01/deadbeef/original.jpg" in page
        listing = admin_client.get(reverse("admin:collector_storagesweep_changelist")).content.decode()
        assert "field-orphans" in listing

    def test_a_storage_that_cannot_be_listed_is_recorded_and_reported(self, s3_storage):
        s3_storage.delete_bucket()
        with pytest.raises(CommandError, match="Cannot list storage"):
            run("storage_sweep")
        sweep = StorageSweep.objects.get()
        assert "Cannot list storage" in sweep.error and sweep.finished_at and sweep.files_checked == 0


    def test_it_finds_files_left_by_a_failed_deletion_on_s3(self, s3_storage):
        photo = make_photo()
        s3_storage.client.put_object(Bucket=s3_storage.bucket, Key="photos/2026/01/01/abc/original.jpg", Body=b"x")
        out, _ = run("storage_sweep", "--min-age-hours", "0", "--delete")
        assert "4 files checked: 1 orphan(s)" in out and "Deleted 1." in out
        assert s3_storage.keys() == sorted(photo.storage_keys)


class TestStorageSweepSchedule:
    def test_the_scheduler_sweeps_nightly_and_only_reports_by_default(self):
        from collector.management.commands.storage_sweep import Command
        from config.scheduler import jobs_declared

        job = next(j for j in jobs_declared() if j["id"] == "storage-sweep")
        assert job["command"][0] == "storage_sweep" and "--delete" not in job["command"]
        # One age rule, by hand and scheduled alike: the command's default, 24 hours.
        assert "--min-age-hours" not in job["command"]
        assert Command().create_parser("manage.py", "storage_sweep").parse_args([]).min_age_hours == 24

    def test_deleting_is_the_operators_choice(self, tmp_path):
        env = {**os.environ, "STORAGE_SWEEP_DELETE": "true", "STORAGE_SWEEP_MIN_AGE_HOURS": "48", "DEBUG": "true",
               "DJANGO_SETTINGS_MODULE": "config.settings"}
        code = ("import json; from config.scheduler import jobs_declared; "
                "from collector.management.commands.storage_sweep import Command; "
                "print(json.dumps(next(j for j in jobs_declared() if j['id'] == 'storage-sweep')['command'])); "
                "print(Command().create_parser('manage.py', 'storage_sweep').parse_args([]).min_age_hours)")
        done = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + code], env=env,
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=60)
        assert done.returncode == 0, done.stderr
        command, min_age = done.stdout.strip().splitlines()[-2:]
        assert '"--delete"' in command and float(min_age) == 48
