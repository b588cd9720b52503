"""Community verification through the API: who may verify, blind verdicts, community approval, disputes that
reach staff first, staff winning, gold-standard demotion and verify points only for verdicts that match."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from challenges.models import PointEntry, PointReason
from collector import selectors
from collector.models import Photo, PhotoReview, PhotoStatus, Verification
from tests.collector.asserts import assert_error
from tests.factories import client_for, make_label, make_photo, make_reviewer, make_volunteer

NEXT, VERIFY = "/api/v1/verifications/next/", "/api/v1/verifications/"


def make_verifier(name: str | None = None, approved: int = 1, label=None):
    volunteer = make_volunteer(name)
    for _ in range(approved):
        make_photo(volunteer=volunteer, label=label, status=PhotoStatus.APPROVED)
    return volunteer.user


def verify(user, photo, verdict, label=None):
    body = {"photo": photo.pk, "verdict": verdict}
    if label:
        body["label"] = label
    return client_for(user).post(VERIFY, body, format="json")


def verify_points(user) -> int:
    return sum(PointEntry.objects.filter(volunteer=user, reason=PointReason.VERIFY).values_list("points", flat=True))


@pytest.fixture(autouse=True)
def community(settings):
    settings.COMMUNITY_REVIEW = True
    settings.COMMUNITY_REVIEW_MIN_APPROVED = 1  # one approved photo makes a verifier (the default is 5)
    settings.COMMUNITY_REVIEW_MIN_VOTES = 3
    settings.COMMUNITY_REVIEW_AGREEMENT = 2 / 3
    settings.COMMUNITY_REVIEW_GOLD_EVERY = 1000  # no gold unless a test asks for it
    settings.POINTS_VERIFY = 1


@pytest.fixture
def tulip(db):
    return make_label("tulip")


@pytest.fixture
def pending(tulip):
    return make_photo(volunteer=make_volunteer("sender"), label=tulip)


@pytest.mark.django_db
class TestWhoVerifies:
    def test_it_opens_after_enough_approved_photos_of_ones_own(self, settings, pending):
        settings.COMMUNITY_REVIEW_MIN_APPROVED = 5
        newcomer = make_verifier(approved=4)
        assert_error(client_for(newcomer).get(NEXT), 403, "not_eligible")
        assert_error(verify(newcomer, pending, "agree"), 403, "not_eligible")
        make_photo(volunteer=newcomer.volunteer, status=PhotoStatus.APPROVED)
        response = client_for(newcomer).get(NEXT)
        assert response.status_code == 200, response.content
        assert response.json()["photo"]["id"] == pending.pk

    def test_community_review_false_switches_it_off(self, settings, pending):
        settings.COMMUNITY_REVIEW = False
        user = make_verifier()
        assert_error(client_for(user).get(NEXT), 403, "not_eligible")
        assert_error(verify(user, pending, "agree"), 403, "not_eligible")
        assert not Verification.objects.exists()

    def test_strangers_get_401(self, pending):
        assert_error(APIClient().get(NEXT), 401)


@pytest.mark.django_db
class TestNext:
    def test_it_shows_a_photo_and_its_label_and_nothing_of_other_verdicts(self, pending):
        make_label("rose")
        first, second = make_verifier(), make_verifier()
        assert verify(first, pending, "disagree", "rose").status_code == 201
        body = client_for(second).get(NEXT).json()
        assert body == {"photo": {"id": pending.pk, "thumbnail_url": f"http://testserver{pending.thumbnail_url}"},
                        "label": "tulip"}, "blind: no verdicts, no counts"
        thumb = client_for(second).get(pending.thumbnail_url)
        assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg", "verifiers see what they judge"

    def test_never_ones_own_nor_a_photo_already_judged(self, tulip):
        user = make_verifier(label=tulip)
        make_photo(volunteer=user.volunteer, label=tulip)  # own, pending
        other = make_photo(label=tulip)
        assert client_for(user).get(NEXT).json()["photo"]["id"] == other.pk
        assert verify(user, other, "agree").status_code == 201
        assert_error(client_for(user).get(NEXT), 404, "nothing_to_verify")

    def test_photos_closest_to_a_decision_come_first(self, tulip):
        older, newer = make_photo(label=tulip), make_photo(label=tulip)
        verify(make_verifier(), newer, "agree")
        assert client_for(make_verifier()).get(NEXT).json()["photo"]["id"] == newer.pk
        assert older.pk < newer.pk


@pytest.mark.django_db
class TestVerdicts:
    def test_three_agreeing_volunteers_approve_a_photo_for_the_community(self, pending):
        verifiers = [make_verifier() for _ in range(3)]
        for user in verifiers[:2]:
            response = verify(user, pending, "agree")
            assert response.status_code == 201, response.content
            assert Photo.objects.get(pk=pending.pk).status == PhotoStatus.PENDING, "two verdicts decide nothing"
        response = verify(verifiers[2], pending, "agree", "tulip")
        assert response.status_code == 201
        assert set(response.json()) == {"id", "photo", "verdict", "label", "created_at"}
        photo = Photo.objects.get(pk=pending.pk)
        assert photo.status == PhotoStatus.APPROVED and photo.reviewed_by is None and photo.approved_at
        decision = PhotoReview.objects.get(photo=photo)
        assert decision.by_community and decision.decision == "approved" and "3 of 3" in decision.note
        assert sorted(Verification.objects.filter(photo=photo).values_list("verifier_id", flat=True)) == sorted(
            u.pk for u in verifiers)
        assert photo in selectors.photos_approved(), "it may train the next model"
        assert [verify_points(u) for u in verifiers] == [1, 1, 1]

    def test_a_photo_the_crowd_disputes_goes_to_staff_first_with_the_crowds_label(self, tulip):
        from tests.collector.test_admin_review import group_reviewer, logged_in

        rose = make_label("rose")
        older = make_photo(label=tulip)  # waiting longer, but not disputed
        disputed = make_photo(label=tulip)
        voters = [make_verifier() for _ in range(3)]
        verify(voters[0], disputed, "agree")
        verify(voters[1], disputed, "disagree", "rose")
        verify(voters[2], disputed, "disagree", "rose")
        photo = Photo.objects.get(pk=disputed.pk)
        assert photo.status == PhotoStatus.PENDING and photo.disputed and photo.crowd_label == rose
        next_item = client_for(make_verifier()).get(NEXT).json()
        assert next_item["photo"]["id"] == older.pk, "a disputed photo waits for staff, not for more verdicts"
        staff = group_reviewer("rita")
        assert list(selectors.review_queue(user=staff).values_list("pk", flat=True))[:2] == [disputed.pk, older.pk]
        page = logged_in(staff).get("/admin/collector/photo/review/").content.decode()
        assert page.index(f'id="photo-{disputed.pk}"') < page.index(f'id="photo-{older.pk}"')
        assert "Disputed" in page and "the crowd says rose" in page
        # Staff decide: approve under rose. Only the verdicts that said so earn verify points.
        response = client_for(staff).post(f"/api/v1/photos/{disputed.pk}/review/",
                                          {"decision": "approve", "label": "rose"}, format="json")
        assert response.status_code == 200
        photo.refresh_from_db()
        assert (photo.status, photo.label, photo.disputed) == (PhotoStatus.APPROVED, rose, False)
        assert [verify_points(u) for u in voters] == [0, 1, 1]

    def test_staff_decisions_win_and_move_verify_points(self, pending):
        verifiers = [make_verifier() for _ in range(3)]
        for user in verifiers:
            verify(user, pending, "agree")
        assert Photo.objects.get(pk=pending.pk).status == PhotoStatus.APPROVED
        late = make_verifier()  # shown the photo while it was pending; answers after the crowd approved it
        assert verify(late, pending, "agree").status_code == 201
        assert verify_points(late) == 1 and PhotoReview.objects.filter(photo=pending).count() == 1
        verifiers.append(late)
        staff = make_reviewer()
        client_for(staff).post(f"/api/v1/photos/{pending.pk}/review/", {"decision": "reject", "reason": "wrong_label"},
                               format="json")
        photo = Photo.objects.get(pk=pending.pk)
        assert photo.status == PhotoStatus.REJECTED and photo not in selectors.photos_approved()
        assert [verify_points(u) for u in verifiers] == [0, 0, 0, 0], "agreeing with a rejected photo earns nothing"
        assert PointEntry.objects.filter(reason=PointReason.VERIFY, points=-1).count() == 4, "taken back in the ledger"
        assert_error(verify(make_verifier(), pending, "agree"), 409, "already_decided")

    def test_a_photo_staff_decided_meanwhile_takes_no_more_verdicts(self, pending):
        user = make_verifier()
        make_reviewer_decides = make_reviewer()
        client_for(make_reviewer_decides).post(f"/api/v1/photos/{pending.pk}/review/", {"decision": "approve"},
                                               format="json")
        assert_error(verify(user, pending, "agree"), 409, "already_decided")
        assert not Verification.objects.exists()

    def test_own_photos_twice_and_bad_input_are_refused(self, pending, tulip):
        user = make_verifier(label=tulip)
        own = make_photo(volunteer=user.volunteer, label=tulip)
        assert_error(verify(user, own, "agree"), 403, "own_photo")
        assert verify(user, pending, "unsure").status_code == 201
        assert_error(verify(user, pending, "agree"), 409, "already_verified")
        assert_error(verify(user, make_photo(label=tulip), "maybe"), 400, "invalid", ["verdict"])
        assert_error(verify(user, make_photo(label=tulip), "disagree", "nope"), 400, "invalid", ["label"])
        assert_error(client_for(user).post(VERIFY, {"photo": 99999999, "verdict": "agree"}, format="json"), 404)
        assert Verification.objects.count() == 1

    def test_unsure_verdicts_never_decide_nor_earn(self, pending):
        users = [make_verifier() for _ in range(4)]
        verify(users[0], pending, "unsure")
        verify(users[1], pending, "agree")
        verify(users[2], pending, "agree")
        assert Photo.objects.get(pk=pending.pk).status == PhotoStatus.PENDING
        verify(users[3], pending, "agree")
        assert Photo.objects.get(pk=pending.pk).status == PhotoStatus.APPROVED
        assert [verify_points(u) for u in users] == [0, 1, 1, 1]


@pytest.mark.django_db
class TestGoldStandard:
    def test_a_verifier_who_fails_gold_stops_counting_and_staff_see_it(self, settings, tulip):
        from collector.services import verifier_gold_agreement
        from tests.collector.test_admin_review import logged_in

        settings.COMMUNITY_REVIEW_GOLD_EVERY = 2  # every second item is gold
        settings.COMMUNITY_REVIEW_GOLD_MIN = 2
        settings.COMMUNITY_REVIEW_GOLD_AGREEMENT = 0.7
        gold = [make_photo(label=tulip, status=PhotoStatus.APPROVED) for _ in range(3)]
        photos = [make_photo(label=tulip) for _ in range(4)]
        clicker = make_verifier("clicker")
        served_gold = 0
        for _ in range(4):  # the clicker disagrees with everything
            item = client_for(clicker).get(NEXT).json()
            photo = Photo.objects.get(pk=item["photo"]["id"])
            served_gold += photo.status == PhotoStatus.APPROVED
            assert verify(clicker, photo, "disagree").status_code == 201
        assert served_gold == 2, "one item in COMMUNITY_REVIEW_GOLD_EVERY was gold"
        assert set(item) == {"photo", "label"}, "gold looks like any other item"
        agreement = verifier_gold_agreement(user_id=clicker.pk)
        assert (agreement.gold, agreement.agreed, agreement.counts) == (2, 0, False)
        judged = [v.photo for v in Verification.objects.filter(verifier=clicker, gold=False)]
        target = judged[0]
        honest = [make_verifier() for _ in range(2)]
        for user in honest:
            verify(user, target, "agree")
        target.refresh_from_db()
        # 2 honest agree + the clicker's disagree would be a dispute; the clicker does not count: too few verdicts.
        assert target.status == PhotoStatus.PENDING and not target.disputed
        verify(make_verifier(), target, "agree")
        assert Photo.objects.get(pk=target.pk).status == PhotoStatus.APPROVED
        assert verify_points(clicker) == 0
        staff_page = logged_in(make_reviewer()).get("/admin/collector/verifier/").content.decode()
        assert "clicker" in staff_page and "0 of 2" in staff_page and "not counted" in staff_page
        assert gold and photos
