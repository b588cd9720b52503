"""The review queue in the Django admin, through the test client as reviewer, non-reviewer staff and superuser."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.test import Client

from collector.models import Photo, PhotoReview, PhotoStatus
from collector.services import REVIEWERS_GROUP, volunteer_delete
from tests.conftest import stored_files
from tests.factories import image_bytes, make_label, make_photo, make_reviewer, make_volunteer

User = get_user_model()
LIST = "/admin/collector/photo/"


def change_url(photo) -> str:
    return f"/admin/collector/photo/{photo.pk}/change/"


def decide_url(photo) -> str:
    return f"/admin/collector/photo/{photo.pk}/decide/"


def group_reviewer(username="rita") -> User:
    """A reviewer the way an operator makes one (`manage.py reviewers_group --add`): staff in the Reviewers group.

    Through the command's service, not the migration's row: a transactional test's flush removes that row."""
    from collector.services import reviewers_group_sync

    user = User.objects.create_user(username=username, password="review-pass-1", is_staff=True)
    reviewers_group_sync(add_usernames=[username])
    return User.objects.get(pk=user.pk)


def plain_staff(username="sam") -> User:
    """Staff who may look at and 'change' photos but lack the review permission."""
    user = User.objects.create_user(username=username, password="staff-pass-1", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_photo", "change_photo"]))
    return User.objects.get(pk=user.pk)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def listed_ids(response) -> list[int]:
    return [photo.pk for photo in response.context["cl"].result_list]


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def review_rows(photo) -> list[PhotoReview]:
    return list(PhotoReview.objects.filter(photo=photo).order_by("id"))


@pytest.fixture
def reviewer(db):
    return group_reviewer()


@pytest.fixture
def queue(db):
    """Three pending photos (oldest first), one approved, one rejected."""
    mug, keys = make_label("mug"), make_label("keys")
    alice, bob = make_volunteer("alice"), make_volunteer("bob")
    pending = [
        make_photo(volunteer=alice, label=mug),
        make_photo(volunteer=bob, label=keys),
        make_photo(volunteer=alice, label=keys),
    ]
    approved = make_photo(volunteer=bob, label=mug, status=PhotoStatus.APPROVED)
    rejected = make_photo(volunteer=alice, label=mug, status=PhotoStatus.REJECTED)
    return {"pending": pending, "approved": approved, "rejected": rejected, "mug": mug, "keys": keys,
            "alice": alice, "bob": bob}


@pytest.mark.django_db
class TestReviewersGroup:
    def test_it_exists_after_migrate_with_the_review_permission(self):
        group = Group.objects.get(name=REVIEWERS_GROUP)
        codenames = set(group.permissions.values_list("codename", flat=True))
        assert {"review_photo", "view_photo", "change_photo"} <= codenames

    def test_it_makes_its_members_reviewers(self, reviewer):
        assert reviewer.has_perm("collector.review_photo")
        assert not plain_staff().has_perm("collector.review_photo")


@pytest.mark.django_db
class TestPhotoList:
    def test_it_shows_the_pending_queue_oldest_first_by_default(self, reviewer, queue):
        response = logged_in(reviewer).get(LIST)
        assert response.status_code == 200
        assert listed_ids(response) == [p.pk for p in queue["pending"]]

    def test_it_shows_thumbnails_the_reviewer_can_load(self, reviewer, queue):
        client = logged_in(reviewer)
        html = client.get(LIST).content.decode()
        for photo in queue["pending"]:
            url = f"/api/v1/photos/{photo.pk}/thumbnail/"
            match = re.search(rf'<img src="{re.escape(url)}"[^>]*max-width:(\d+)px', html)
            assert match, f"no thumbnail for photo {photo.pk}"
            assert int(match.group(1)) >= 160  # large enough to judge
        image = client.get(f"/api/v1/photos/{queue['pending'][0].pk}/thumbnail/")
        assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
        assert b"".join(image.streaming_content)[:3] == b"\xff\xd8\xff"

    def test_it_filters_by_status(self, reviewer, queue):
        client = logged_in(reviewer)
        assert listed_ids(client.get(LIST, {"status": "approved"})) == [queue["approved"].pk]
        assert listed_ids(client.get(LIST, {"status": "rejected"})) == [queue["rejected"].pk]
        assert len(listed_ids(client.get(LIST, {"status": "all"}))) == 5

    def test_it_lists_withdrawn_photos_without_their_deleted_files(self, reviewer, queue):
        volunteer_delete(user=queue["bob"].user)
        response = logged_in(reviewer).get(LIST, {"status": "withdrawn"})
        assert sorted(listed_ids(response)) == sorted([queue["pending"][1].pk, queue["approved"].pk])
        html = response.content.decode()
        assert "(files deleted)" in html and "/thumbnail/" not in html

    def test_it_filters_by_label(self, reviewer, queue):
        response = logged_in(reviewer).get(LIST, {"label__id__exact": queue["keys"].pk})
        assert listed_ids(response) == [queue["pending"][1].pk, queue["pending"][2].pk]

    def test_it_filters_by_volunteer(self, reviewer, queue):
        response = logged_in(reviewer).get(LIST, {"status": "all", "volunteer__id__exact": queue["bob"].user_id})
        assert sorted(listed_ids(response)) == sorted([queue["pending"][1].pk, queue["approved"].pk])

    def test_it_filters_by_challenge(self, reviewer, queue):
        Photo.objects.filter(pk=queue["pending"][0].pk).update(challenge_id=7)
        Photo.objects.filter(pk=queue["pending"][2].pk).update(challenge_id=8)
        client = logged_in(reviewer)
        assert listed_ids(client.get(LIST, {"challenge": "7"})) == [queue["pending"][0].pk]
        assert listed_ids(client.get(LIST, {"challenge": "none"})) == [queue["pending"][1].pk]
        assert listed_ids(client.get(LIST, {"challenge": "any"})) == [queue["pending"][0].pk, queue["pending"][2].pk]
        assert "Challenge #8" in client.get(LIST).content.decode()

    def test_it_filters_near_duplicates_and_links_the_original(self, reviewer, db):
        label = make_label("mug")
        data = image_bytes(seed=42)
        original = make_photo(volunteer=make_volunteer("first"), label=label, image=data)
        copy = make_photo(volunteer=make_volunteer("second"), label=label, image=data)
        assert copy.near_duplicate_of_id == original.pk
        client = logged_in(reviewer)
        response = client.get(LIST, {"near_duplicate": "yes"})
        assert listed_ids(response) == [copy.pk]
        assert f'href="/admin/collector/photo/{original.pk}/change/"' in response.content.decode()
        assert listed_ids(client.get(LIST, {"near_duplicate": "no"})) == [original.pk]
        page = client.get(change_url(copy)).content.decode()
        assert f'class="near-duplicate" href="/admin/collector/photo/{original.pk}/change/"' in page
        assert f'id="likely-original" src="/api/v1/photos/{original.pk}/thumbnail/"' in page  # side by side

    def test_it_runs_a_constant_number_of_queries(self, reviewer, django_assert_max_num_queries, db):
        label = make_label("mug")
        for _ in range(3):
            make_photo(label=label)
        client = logged_in(reviewer)
        client.get(LIST)  # warm caches (content types, sessions)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as few:
            client.get(LIST)
        for _ in range(12):
            make_photo(label=label)
        with django_assert_max_num_queries(len(few.captured_queries)):
            response = client.get(LIST)
        assert len(listed_ids(response)) == 15

    def test_it_opens_for_staff_holding_only_the_review_permission(self, queue):
        reviewer = make_reviewer("api-reviewer")  # review_photo, nothing else
        response = logged_in(reviewer).get(LIST)
        assert response.status_code == 200 and len(listed_ids(response)) == 3
        assert "approve_photos" in response.content.decode()

    def test_it_is_refused_to_staff_without_photo_permissions(self, queue):
        bare = User.objects.create_user(username="bare", password="x-pass-12345", is_staff=True)
        assert logged_in(bare).get(LIST).status_code == 403


@pytest.mark.django_db
class TestReviewPanel:
    def test_it_shows_the_photo_and_the_decision_buttons(self, reviewer, queue):
        photo = queue["pending"][0]
        response = logged_in(reviewer).get(change_url(photo))
        html = response.content.decode()
        assert response.status_code == 200
        assert f'class="main" src="/api/v1/photos/{photo.pk}/thumbnail/"' in html
        assert 'id="approve-button"' in html and 'id="reject-button"' in html
        for reason in ("blurry", "wrong_label", "duplicate", "inappropriate", "other"):
            assert f'value="{reason}"' in html
        assert 'name="_save"' not in html  # fields are read-only: no Save button

    def test_it_approves_records_who_and_when_and_opens_the_next(self, reviewer, queue):
        first, second = queue["pending"][0], queue["pending"][1]
        response = logged_in(reviewer).post(decide_url(first), {"decision": "approve", "label": "mug", "next": "on"})
        assert response.status_code == 302 and response["Location"] == change_url(second)
        first.refresh_from_db()
        assert first.status == PhotoStatus.APPROVED
        assert first.reviewed_by == reviewer and first.reviewed_at is not None and first.approved_at is not None
        [row] = review_rows(first)
        assert (row.reviewer, row.decision, row.label_after.slug) == (reviewer, "approved", "mug")
        assert f"Photo #{first.pk} approved." in messages_of(response)

    def test_it_opens_the_next_photo_within_the_filter_the_reviewer_came_from(self, reviewer, queue):
        keys_filter = f"status=pending&label__id__exact={queue['keys'].pk}"
        first_keys, second_keys = queue["pending"][1], queue["pending"][2]
        client = logged_in(reviewer)
        page = client.get(change_url(first_keys), {"_changelist_filters": keys_filter}).content.decode()
        assert 'name="_changelist_filters"' in page
        response = client.post(decide_url(first_keys), {"decision": "approve", "label": "keys", "next": "on",
                                                         "_changelist_filters": keys_filter})
        assert response["Location"].startswith(change_url(second_keys) + "?")  # not the older mug photo
        response = client.post(decide_url(second_keys), {"decision": "approve", "label": "keys", "next": "on",
                                                          "_changelist_filters": keys_filter})
        assert response["Location"] == f"{LIST}?{keys_filter}"  # that queue is empty now
        assert "The pending queue is empty." in messages_of(response)

    def test_it_rejects_with_a_reason(self, reviewer, queue):
        photo = queue["pending"][0]
        response = logged_in(reviewer).post(decide_url(photo), {"decision": "reject", "reason": "blurry",
                                                                 "note": "out of focus", "label": "mug"})
        assert response.status_code == 302 and response["Location"] == change_url(photo)
        photo.refresh_from_db()
        assert (photo.status, photo.rejection_reason, photo.review_note) == ("rejected", "blurry", "out of focus")
        [row] = review_rows(photo)
        assert (row.reviewer, row.decision, row.reason) == (reviewer, "rejected", "blurry")

    def test_it_refuses_a_rejection_without_a_reason(self, reviewer, queue):
        photo = queue["pending"][0]
        response = logged_in(reviewer).post(decide_url(photo), {"decision": "reject", "label": "mug"})
        assert response.status_code == 302
        assert any("needs a reason" in m for m in messages_of(response))
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.PENDING and review_rows(photo) == []

    def test_it_approves_under_another_label(self, reviewer, queue):
        photo = queue["pending"][0]  # a mug
        logged_in(reviewer).post(decide_url(photo), {"decision": "approve", "label": "keys"})
        photo.refresh_from_db()
        assert (photo.status, photo.label.slug) == ("approved", "keys")
        [row] = review_rows(photo)
        assert (row.label_before.slug, row.label_after.slug) == ("mug", "keys")

    def test_it_relabels_without_deciding(self, reviewer, queue):
        photo = queue["approved"]
        before = len(review_rows(photo))
        logged_in(reviewer).post(decide_url(photo), {"decision": "relabel", "label": "keys"})
        photo.refresh_from_db()
        assert (photo.status, photo.label.slug) == ("approved", "keys")
        rows = review_rows(photo)
        assert len(rows) == before + 1 and rows[-1].reviewer == reviewer
        assert (rows[-1].label_before.slug, rows[-1].label_after.slug) == ("mug", "keys")

    def test_it_never_lets_reviewers_decide_on_their_own_photos(self, db):
        reviewer = group_reviewer()
        own = make_photo(volunteer=make_volunteer("rita-the-volunteer"), label=make_label("mug"))
        Photo.objects.filter(pk=own.pk).update(volunteer=reviewer)  # the reviewer uploaded it
        client = logged_in(reviewer)
        page = client.get(change_url(own)).content.decode()
        assert 'id="own-photo"' in page and 'id="approve-button"' not in page
        response = client.post(decide_url(own), {"decision": "approve", "label": "mug"})
        assert any("own photos" in m for m in messages_of(response))
        own.refresh_from_db()
        assert own.status == PhotoStatus.PENDING and review_rows(own) == []

    def test_it_forbids_staff_without_the_review_permission(self, queue):
        staff, photo = plain_staff(), queue["pending"][0]
        client = logged_in(staff)
        page = client.get(change_url(photo))
        assert page.status_code == 200
        assert 'id="not-reviewer"' in page.content.decode() and 'id="approve-button"' not in page.content.decode()
        assert client.post(decide_url(photo), {"decision": "approve", "label": "mug"}).status_code == 403
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.PENDING and review_rows(photo) == []

    def test_it_ignores_direct_edits_of_the_change_form(self, reviewer, queue):
        photo = queue["pending"][0]
        response = logged_in(reviewer).post(change_url(photo), {"status": "approved", "label": queue["keys"].pk})
        assert response.status_code in (200, 302)
        photo.refresh_from_db()
        assert (photo.status, photo.label.slug) == ("pending", "mug") and review_rows(photo) == []

    def test_it_shows_the_audit_trail(self, reviewer, queue):
        photo = queue["approved"]
        html = logged_in(reviewer).get(change_url(photo)).content.decode()
        assert "Review history" in html and photo.reviewed_by.username in html

    def test_it_lets_a_superuser_decide(self, queue):
        admin_user = User.objects.create_superuser("root", "root@example.org", "root-pass-123")
        photo = queue["pending"][1]
        logged_in(admin_user).post(decide_url(photo), {"decision": "reject", "reason": "inappropriate"})
        photo.refresh_from_db()
        assert (photo.status, photo.rejection_reason, photo.reviewed_by) == ("rejected", "inappropriate", admin_user)


def run_action(client, action: str, photos, *, query: str = "", **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [p.pk for p in photos], **extra}
    if "apply" not in extra:
        data["index"] = 0  # the changelist's own form
    return client.post(LIST + query, data)


@pytest.mark.django_db
class TestBulkActions:
    def test_it_approves_many_and_skips_own_photos(self, db):
        reviewer = group_reviewer()
        label = make_label("mug")
        others = [make_photo(label=label) for _ in range(3)]
        own = make_photo(label=label)
        Photo.objects.filter(pk=own.pk).update(volunteer=reviewer)
        response = run_action(logged_in(reviewer), "approve_photos", [*others, own])
        assert response.status_code == 302
        texts = messages_of(response)
        assert "3 photos approved." in texts
        assert any("Skipped 1 of your own photo" in m for m in texts)
        for photo in others:
            photo.refresh_from_db()
            assert photo.status == PhotoStatus.APPROVED and photo.reviewed_by == reviewer
            assert [(r.reviewer, r.decision) for r in review_rows(photo)] == [(reviewer, "approved")]
        own.refresh_from_db()
        assert own.status == PhotoStatus.PENDING and review_rows(own) == []

    def test_it_asks_for_a_reason_before_rejecting(self, reviewer, queue):
        photos = queue["pending"][:2]
        client = logged_in(reviewer)
        page = run_action(client, "reject_photos", photos)
        assert page.status_code == 200
        html = page.content.decode()
        assert 'id="action-form"' in html and 'name="reason"' in html
        for photo in photos:
            assert f'src="/api/v1/photos/{photo.pk}/thumbnail/"' in html
        assert all(Photo.objects.get(pk=p.pk).status == PhotoStatus.PENDING for p in photos)

        again = run_action(client, "reject_photos", photos, apply="1", reason="")
        assert again.status_code == 200 and "This field is required" in again.content.decode()
        assert all(Photo.objects.get(pk=p.pk).status == PhotoStatus.PENDING for p in photos)

        done = run_action(client, "reject_photos", photos, apply="1", reason="duplicate", note="same as #1")
        assert done.status_code == 302 and "2 photos rejected." in messages_of(done)
        for photo in photos:
            photo.refresh_from_db()
            assert (photo.status, photo.rejection_reason, photo.review_note) == ("rejected", "duplicate", "same as #1")
            assert [(r.reviewer, r.reason) for r in review_rows(photo)] == [(reviewer, "duplicate")]

    def test_it_relabels_many_keeping_their_status(self, reviewer, queue):
        photos = [queue["pending"][0], queue["approved"]]
        client = logged_in(reviewer)
        page = run_action(client, "relabel_photos", photos, query="?status=all")
        assert page.status_code == 200 and 'name="label"' in page.content.decode()
        done = run_action(client, "relabel_photos", photos, query="?status=all", apply="1", label="keys")
        assert done.status_code == 302 and "2 photos relabelled as keys." in messages_of(done)
        statuses = {p.pk: p.status for p in photos}
        for photo in photos:
            photo.refresh_from_db()
            assert photo.label.slug == "keys" and photo.status == statuses[photo.pk]
            last = review_rows(photo)[-1]
            assert (last.reviewer, last.label_before.slug, last.label_after.slug) == (reviewer, "mug", "keys")

    def test_it_offers_no_decisions_to_staff_without_the_review_permission(self, queue):
        client = logged_in(plain_staff())
        response = client.get(LIST)
        assert response.status_code == 200
        assert "approve_photos" not in response.content.decode()
        assert "/thumbnail/" not in response.content.decode()  # that view would refuse them: no broken images
        assert len(listed_ids(response)) == 3
        run_action(client, "approve_photos", queue["pending"])
        assert Photo.objects.filter(status=PhotoStatus.PENDING).count() == 3
        assert not PhotoReview.objects.filter(reviewer__username="sam").exists()


@pytest.mark.django_db
class TestLabelAdmin:
    def test_it_shows_approved_counts_and_progress_to_both_targets(self, reviewer, db):
        superuser = User.objects.create_superuser("root", "root@example.org", "root-pass-123")
        mug = make_label("mug", prototype_target=4)
        for _ in range(2):
            make_photo(label=mug, status=PhotoStatus.APPROVED)
        make_photo(label=mug)
        html = logged_in(superuser).get("/admin/collector/label/").content.decode()
        assert "2 / 4 (50%)" in html  # the per-label prototype target
        assert "2 / 200 (1%)" in html  # LABEL_PRODUCTION_TARGET
        assert f"?status=pending&amp;label__id__exact={mug.pk}" in html  # one pending, linked to the queue

    def test_it_edits_targets_but_never_the_slug(self, db):
        superuser = User.objects.create_superuser("root", "root@example.org", "root-pass-123")
        mug = make_label("mug")
        response = logged_in(superuser).post(f"/admin/collector/label/{mug.pk}/change/", {
            "slug": "cup", "name": "Mug", "description": "", "active": "on", "prototype_target": "40",
            "production_target": ""})
        assert response.status_code == 302
        mug.refresh_from_db()
        assert (mug.slug, mug.prototype_target, mug.effective_prototype_target) == ("mug", 40, 40)


@pytest.mark.django_db
class TestVolunteerAdmin:
    def test_it_lists_volunteers_with_their_counts(self, queue):
        superuser = User.objects.create_superuser("root", "root@example.org", "root-pass-123")
        response = logged_in(superuser).get("/admin/collector/volunteer/")
        rows = {v.display_name: v for v in response.context["cl"].result_list}
        assert (rows["alice"].pending_count, rows["alice"].approved_count, rows["alice"].rejected_count) == (2, 0, 1)
        assert (rows["bob"].pending_count, rows["bob"].approved_count) == (1, 1)

    def test_it_deletes_an_account_with_its_files(self, settings, queue, django_capture_on_commit_callbacks):
        superuser = User.objects.create_superuser("root", "root@example.org", "root-pass-123")
        alice = queue["alice"]
        before = len(stored_files(settings.MEDIA_ROOT))
        with django_capture_on_commit_callbacks(execute=True):  # files go after the commit
            response = logged_in(superuser).post("/admin/collector/volunteer/", {
                "action": "delete_accounts", ACTION_CHECKBOX_NAME: [alice.pk], "index": 0})
        assert response.status_code == 302
        assert not User.objects.filter(username="alice").exists()
        assert Photo.objects.filter(status=PhotoStatus.WITHDRAWN).count() == 3
        assert len(stored_files(settings.MEDIA_ROOT)) == before - 3 * 3

    def test_it_keeps_account_deletion_from_reviewers(self, reviewer, queue):
        response = logged_in(reviewer).get("/admin/collector/volunteer/")
        assert response.status_code == 200 and "delete_accounts" not in response.content.decode()


@pytest.mark.django_db
class TestAuditLogAdmin:
    def test_it_lists_decisions_read_only(self, reviewer, queue):
        response = logged_in(reviewer).get("/admin/collector/photoreview/")
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == 2  # the approved and the rejected photo
        row = PhotoReview.objects.first()
        assert logged_in(reviewer).post(f"/admin/collector/photoreview/{row.pk}/delete/").status_code == 403


@pytest.mark.django_db
class TestCreateSuperuser:
    def test_it_works_non_interactively_from_the_standard_variables(self, monkeypatch, queue):
        from django.core.management import call_command

        monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "operator")
        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-operator-password")
        monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@example.org")
        call_command("createsuperuser", "--noinput", verbosity=0)
        user = User.objects.get(username="operator")
        assert user.is_superuser and user.is_staff and user.email == "ops@example.org"
        client = Client()
        # Through the admin's sign-in form, as the operator would (axes checks every sign-in's request).
        signed_in = client.post("/admin/login/", {"username": "operator", "password": "a-long-operator-password",
                                                  "next": LIST})
        assert signed_in.status_code == 302 and signed_in.url == LIST
        response = client.get(LIST)
        assert response.status_code == 200 and len(listed_ids(response)) == 3
        assert "approve_photos" in response.content.decode()
