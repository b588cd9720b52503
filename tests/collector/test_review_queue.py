"""The review queue page (collector.review_views) through the test client: what it lists, who may use it,
and what each decision, single or bulk, JSON or plain form, leaves in the database."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import connection

from collector import review_views
from collector.models import Photo, PhotoReview, PhotoStatus
from tests.collector.test_admin_review import group_reviewer, logged_in, plain_staff
from tests.factories import make_label, make_photo, make_volunteer

QUEUE = "/admin/collector/photo/review/"
JSON = {"HTTP_ACCEPT": "application/json"}


def card_ids(response) -> list[int]:
    return [int(i) for i in re.findall(r'data-photo-id="(\d+)"', response.content.decode())]


def decide(client, decision: str, ids, **fields):
    return client.post(QUEUE, {"decision": decision, "ids": [str(i) for i in ids], **fields}, **JSON)


def reviews_of(photo) -> int:
    return PhotoReview.objects.filter(photo=photo).count()


@pytest.fixture
def reviewer(db):
    return group_reviewer()


@pytest.fixture
def queue(db):
    mug, keys = make_label("mug"), make_label("keys")
    alice = make_volunteer("alice")
    shy = make_volunteer("shy", consent_public_credit=False)
    pending = [make_photo(volunteer=alice, label=mug), make_photo(volunteer=shy, label=keys),
               make_photo(volunteer=alice, label=keys)]
    approved = make_photo(volunteer=alice, label=mug, status=PhotoStatus.APPROVED)
    return {"pending": pending, "approved": approved, "mug": mug, "keys": keys, "alice": alice, "shy": shy}


@pytest.mark.django_db
class TestQueuePage:
    def test_it_shows_the_pending_photos_oldest_first_with_what_a_reviewer_judges(self, reviewer, queue):
        first, second, _ = queue["pending"]
        Photo.objects.filter(pk=first.pk).update(predicted_label="keys", predicted_confidence=0.82)
        Photo.objects.filter(pk=second.pk).update(near_duplicate_of=queue["approved"])
        response = logged_in(reviewer).get(QUEUE)
        assert response.status_code == 200
        assert card_ids(response) == [p.pk for p in queue["pending"]]
        html = response.content.decode()
        assert f'src="/api/v1/photos/{first.pk}/thumbnail/"' in html
        assert "keys (82%)" in html and "(differs)" in html  # the phone disagreed with the volunteer
        assert f'href="/admin/collector/photo/{queue["approved"].pk}/change/"' in html and "near-duplicate" in html
        assert "alice" in html and f"Volunteer #{queue['shy'].user_id}" in html  # public names only
        assert ">shy<" not in html
        assert "3 photos waiting" in html
        assert "<title>Review queue | Crowdlens admin</title>" in html

    def test_it_never_shows_a_reviewer_their_own_photos(self, queue):
        volunteer_reviewer = group_reviewer("vera")
        own = make_photo(volunteer=make_volunteer("vera-v"), label=queue["mug"])
        Photo.objects.filter(pk=own.pk).update(volunteer=volunteer_reviewer)
        assert own.pk not in card_ids(logged_in(volunteer_reviewer).get(QUEUE))

    def test_it_filters_by_label(self, reviewer, queue):
        response = logged_in(reviewer).get(QUEUE, {"label": "keys"})
        assert card_ids(response) == [queue["pending"][1].pk, queue["pending"][2].pk]
        assert "2 photos waiting under “keys”" in response.content.decode()

    def test_it_preloads_the_next_page_of_photos(self, reviewer, queue, monkeypatch):
        monkeypatch.setattr(review_views, "PAGE_SIZE", 2)
        response = logged_in(reviewer).get(QUEUE)
        html = response.content.decode()
        assert card_ids(response) == [p.pk for p in queue["pending"][:2]]
        third = queue["pending"][2].pk
        assert f'<link rel="preload" as="image" href="/api/v1/photos/{third}/thumbnail/">' in html
        assert f'data-preload="/api/v1/photos/{third}/thumbnail/"' in html

    def test_it_runs_a_constant_number_of_queries(self, reviewer, queue, django_assert_max_num_queries):
        from django.db import connection as conn
        from django.test.utils import CaptureQueriesContext

        client = logged_in(reviewer)
        client.get(QUEUE)  # warm caches (content types, sessions)
        with CaptureQueriesContext(conn) as few:
            client.get(QUEUE)
        for i in range(30):
            make_photo(volunteer=make_volunteer(f"more{i}", consent_public_credit=i % 2 == 0), label=queue["mug"])
        with django_assert_max_num_queries(len(few.captured_queries)):
            response = client.get(QUEUE)
        assert len(card_ids(response)) == review_views.PAGE_SIZE

    def test_it_says_when_the_queue_is_empty(self, reviewer, db):
        html = logged_in(reviewer).get(QUEUE).content.decode()
        assert "the queue is empty" in html

    def test_it_is_for_reviewers_only(self, queue, client):
        assert logged_in(plain_staff()).get(QUEUE).status_code == 403
        assert logged_in(plain_staff("sue")).post(QUEUE, {"decision": "approve", "ids": [queue["pending"][0].pk]},
                                                  **JSON).status_code == 403
        assert Photo.objects.get(pk=queue["pending"][0].pk).status == PhotoStatus.PENDING
        response = client.get(QUEUE)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]

    def test_the_admin_links_to_it_for_reviewers(self, reviewer, queue):
        client = logged_in(reviewer)
        for page in ("/admin/", "/admin/collector/photo/"):
            assert f'href="{QUEUE}"' in client.get(page).content.decode(), page
        staff = logged_in(plain_staff())
        assert f'href="{QUEUE}"' not in staff.get("/admin/collector/photo/").content.decode()


@pytest.mark.django_db
class TestDeciding:
    def test_approve_records_the_decision_once_even_when_sent_twice(self, reviewer, queue):
        photo = queue["pending"][0]
        client = logged_in(reviewer)
        first = decide(client, "approve", [photo.pk])
        assert first.status_code == 200
        assert first.json()["results"] == [{"id": photo.pk, "ok": True, "changed": True,
                                            "message": f"Photo #{photo.pk} approved.", "status": "approved",
                                            "status_display": "Approved", "reason": "", "label": "mug"}]
        assert first.json()["waiting"] == 2
        again = decide(client, "approve", [photo.pk])
        assert again.json()["results"][0]["changed"] is False
        assert again.json()["message"] == f"Photo #{photo.pk} was already approved."
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.APPROVED and photo.reviewed_by == reviewer
        assert reviews_of(photo) == 1

    def test_reject_needs_a_reason_and_records_it(self, reviewer, queue):
        photo = queue["pending"][0]
        client = logged_in(reviewer)
        refused = decide(client, "reject", [photo.pk])
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid" and "reason" in refused.json()["error"]["fields"]
        assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.PENDING and reviews_of(photo) == 0
        done = decide(client, "reject", [photo.pk], reason="blurry")
        assert done.json()["message"] == f"Photo #{photo.pk} rejected (blurry)."
        decide(client, "reject", [photo.pk], reason="blurry")  # a double submission
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.REJECTED and photo.rejection_reason == "blurry"
        assert reviews_of(photo) == 1
        decide(client, "reject", [photo.pk], reason="duplicate")  # a different reason is a new decision
        photo.refresh_from_db()
        assert photo.rejection_reason == "duplicate" and reviews_of(photo) == 2

    def test_relabel_keeps_the_status(self, reviewer, queue):
        photo = queue["pending"][0]
        client = logged_in(reviewer)
        answer = decide(client, "relabel", [photo.pk], label="keys").json()
        assert answer["results"][0]["label"] == "keys" and answer["results"][0]["status"] == "pending"
        assert decide(client, "relabel", [photo.pk], label="keys").json()["results"][0]["changed"] is False
        photo.refresh_from_db()
        assert photo.label == queue["keys"] and photo.status == PhotoStatus.PENDING and reviews_of(photo) == 1
        assert decide(client, "relabel", [photo.pk], label="nope").status_code == 400

    def test_a_selection_is_decided_photo_by_photo(self, reviewer, queue):
        ids = [p.pk for p in queue["pending"]] + [queue["approved"].pk]
        answer = decide(logged_in(reviewer), "reject", ids, reason="wrong_label").json()
        assert [r["id"] for r in answer["results"]] == ids
        assert answer["message"] == "4 of 4 photos rejected."
        assert set(Photo.objects.filter(pk__in=ids).values_list("status", "rejection_reason")) == {
            (PhotoStatus.REJECTED, "wrong_label")}

    def test_own_and_missing_photos_fail_alone_with_the_services_message(self, queue):
        rita = group_reviewer("rita2")
        own = queue["pending"][0]
        Photo.objects.filter(pk=own.pk).update(volunteer=rita)
        other = queue["pending"][1]
        answer = decide(logged_in(rita), "approve", [own.pk, other.pk, 999999]).json()
        by_id = {r["id"]: r for r in answer["results"]}
        assert by_id[own.pk]["ok"] is False and "never review their own photos" in by_id[own.pk]["message"]
        assert by_id[999999] == {"id": 999999, "ok": False, "changed": False, "message": "Photo #999999: Not found.",
                                 "status": "", "status_display": "", "reason": "", "label": ""}
        assert by_id[other.pk]["ok"] is True
        assert answer["message"].startswith("1 of 3 photos approved. Not changed: ")
        assert Photo.objects.get(pk=own.pk).status == PhotoStatus.PENDING
        assert Photo.objects.get(pk=other.pk).status == PhotoStatus.APPROVED

    def test_bad_input_is_a_400_in_the_error_shape(self, reviewer, queue):
        client = logged_in(reviewer)
        for fields in ({"decision": "delete", "ids": ["1"]}, {"decision": "approve"},
                       {"decision": "approve", "ids": ["x"]}, {"decision": "approve", "ids": ["9" * 40]},
                       {"decision": "approve", "ids": [str(i) for i in range(201)]}):
            response = client.post(QUEUE, fields, **JSON)
            assert response.status_code == 400, fields
            assert set(response.json()["error"]) == {"code", "message", "fields"}
        assert not PhotoReview.objects.filter(photo__in=queue["pending"]).exists()

    def test_plain_form_posts_work_without_the_script(self, reviewer, queue):
        client = logged_in(reviewer)
        first, second, third = queue["pending"]
        response = client.post(QUEUE, {"one": f"approve:{first.pk}", "reason": "blurry", "label": "mug",
                                       "filter_label": "keys"})
        assert response.status_code == 302 and response["Location"] == QUEUE + "?label=keys"
        assert [str(m) for m in get_messages(response.wsgi_request)] == [f"Photo #{first.pk} approved."]
        client.post(QUEUE, {"one": f"reject:{second.pk}", "reason": "duplicate", "label": "mug"})
        client.post(QUEUE, {"decision": "relabel", "ids": [third.pk], "reason": "blurry", "label": "mug"})
        assert Photo.objects.get(pk=first.pk).status == PhotoStatus.APPROVED
        assert Photo.objects.get(pk=second.pk).rejection_reason == "duplicate"
        assert Photo.objects.get(pk=third.pk).label == queue["mug"]
        refused = client.post(QUEUE, {"decision": "approve"})
        assert refused.status_code == 302
        assert "ids: Pick 1 to 200 photos." in [str(m) for m in get_messages(refused.wsgi_request)]


def test_public_names_follow_consent(db):
    alice, shy = make_volunteer("alice"), make_volunteer("shy", consent_public_credit=False)
    label = make_label("mug")
    assert review_views.volunteer_name(make_photo(volunteer=alice, label=label)) == "alice"
    photo = make_photo(volunteer=shy, label=label)
    assert review_views.volunteer_name(photo) == f"Volunteer #{shy.user_id}"
    Photo.objects.filter(pk=photo.pk).update(volunteer=None)
    assert review_views.volunteer_name(Photo.objects.get(pk=photo.pk)) == "a deleted account"
    assert get_user_model().objects.filter(pk=shy.user_id).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL=postgres://...)")
def test_the_same_decision_sent_at_once_from_many_requests_is_recorded_once(db):
    """A double click or a retry while the first request still runs: the row lock makes them take turns."""
    from tests.challenges.test_concurrency import _race

    photo = make_photo(label=make_label("mug"))
    make_label("keys")
    reviewer = group_reviewer("racer")
    answers = []

    def post(decision, **fields):
        def job():
            answers.append(decide(logged_in(reviewer), decision, [photo.pk], **fields).json()["results"][0])
        return job

    assert _race([post("approve")] * 6 + [post("relabel", label="keys")] * 4) == []
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.APPROVED and photo.label.slug == "keys"
    decisions = list(PhotoReview.objects.filter(photo=photo).values_list("decision", "label_before__slug",
                                                                         "label_after__slug"))
    assert sum(1 for a in answers if a["changed"]) == len(decisions) == 2  # one approval, one relabel
