"""Home, leaderboard, gallery (with the no-JS voting form) and past challenges, as a visitor sees them."""

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone

from challenges import periods, services as challenge_services
from challenges.models import Vote
from collector.models import Photo, PhotoStatus
from tests.factories import make_label, make_photo, make_reviewer, make_volunteer

pytestmark = pytest.mark.django_db


def _today_challenge(label):
    return challenge_services.challenge_create(day=periods.challenge_date_at(timezone.now()), label=label,
                                               title="Mugs in the wild", prompt="Photograph a mug somewhere odd.")


def _text(response) -> str:
    """The page's visible text, tags removed and whitespace collapsed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


class TestHome:
    def test_it_shows_todays_challenge_its_leaderboard_and_featured_photos(self, client):
        mug = make_label("mug")
        challenge = _today_challenge(mug)
        ana = make_volunteer("ana")
        photo = make_photo(volunteer=ana, label=mug)
        photo.challenge_id = challenge.pk
        photo.save(update_fields=["challenge_id"])
        reviewer = make_reviewer()
        from collector import services as collector_services

        collector_services.photo_review(photo_id=photo.pk, reviewer=reviewer, decision="approve")
        challenge_services.photo_feature(photo_id=photo.pk, staff_user=reviewer)

        response = client.get("/")
        assert response.status_code == 200
        text = _text(response)
        assert "Mugs in the wild" in text and "Photograph a mug somewhere odd." in text
        assert 'href="/capture/?target=challenge"' in response.content.decode()
        # Approval 10 + challenge bonus 20 + featured 25.
        assert re.search(r"1 ana 55 1", text), text
        assert "Photos of the day" in text
        assert f'src="/api/v1/photos/{photo.pk}/thumbnail/"' in response.content.decode()
        assert 'alt="A photo of mug by ana"' in response.content.decode()

    def test_it_serves_the_board_alone_for_the_live_refresh(self, client):
        mug = make_label("mug")
        _today_challenge(mug)
        make_photo(volunteer=make_volunteer("ana"), label=mug, status=PhotoStatus.APPROVED)
        response = client.get("/?fragment=board")
        html = response.content.decode()
        assert response.status_code == 200
        assert "<html" not in html and "Challenge leaderboard" in html
        assert 'data-live-src="/?fragment=board"' in client.get("/").content.decode()

    def test_it_lists_the_labels_asked_for_most_needed_first_when_no_challenge_is_open(self, client):
        mug, keys = make_label("mug", prototype_target=4), make_label("keys", prototype_target=4)
        make_label("plant", prototype_target=4)
        make_label("retired", active=False)
        ana = make_volunteer("ana")
        for _ in range(3):
            make_photo(volunteer=ana, label=mug, status=PhotoStatus.APPROVED)
        make_photo(volunteer=ana, label=keys, status=PhotoStatus.APPROVED)
        response = client.get("/")
        assert response.status_code == 200
        text = _text(response)
        assert "There is no challenge right now" in text
        # plant has none of its 4, keys 1, mug 3: the order the daily rotation picks by; inactive labels are not asked for.
        assert re.search(r"Plant \(0 approved photos\) Keys \(1 approved photo\) Mug \(3 approved photos\)", text), text
        assert "Retired" not in text
        html = response.content.decode()
        assert '<a href="/capture/?target=plant">Plant</a>' in html
        # The link opens the camera with that label chosen.
        ana.user.set_password("a-long-password-1")
        ana.user.save()
        client.force_login(ana.user)
        capture = client.get("/capture/?target=plant").content.decode()
        assert re.search(r'<option value="plant" data-label="plant" selected>', capture)

    def test_it_says_there_is_nothing_to_photograph_before_any_label_exists(self, client):
        response = client.get("/")
        assert response.status_code == 200
        assert "There is nothing to photograph yet" in _text(response)
        assert "No photos to show yet." in _text(response)


class TestLeaderboardPage:
    def test_it_ranks_volunteers_per_period_and_hides_names_without_consent(self, client):
        mug = make_label("mug")
        ana, bo = make_volunteer("ana"), make_volunteer("bo", consent_public_credit=False)
        make_photo(volunteer=ana, label=mug, status=PhotoStatus.APPROVED)
        make_photo(volunteer=ana, label=mug, status=PhotoStatus.APPROVED)
        make_photo(volunteer=bo, label=mug, status=PhotoStatus.APPROVED)
        for period in ("day", "week", "month", "all"):
            response = client.get(f"/leaderboard/?period={period}")
            assert response.status_code == 200
            text = _text(response)
            assert re.search(rf"1 ana 20 2 2 Volunteer #{bo.user_id} 10 1", text), (period, text)
            assert " bo " not in text
            assert f'href="?period={period}" aria-current="page"' in response.content.decode()

    def test_it_shows_the_viewers_own_rank_below_the_page(self, client, monkeypatch):
        from pages import views

        monkeypatch.setattr(views, "LEADERBOARD_PAGE_SIZE", 1)
        mug = make_label("mug")
        ana, bo = make_volunteer("ana"), make_volunteer("bo")
        make_photo(volunteer=ana, label=mug, status=PhotoStatus.APPROVED)
        make_photo(volunteer=ana, label=mug, status=PhotoStatus.APPROVED)
        make_photo(volunteer=bo, label=mug, status=PhotoStatus.APPROVED)
        client.force_login(bo.user)
        response = client.get("/leaderboard/?period=all")
        text = _text(response)
        assert re.search(r"1 ana 20 2 ⋯ 2 bo \(you\) 10 1", text), text
        assert 'href="?period=all&amp;page=2" rel="next"' in response.content.decode()
        page2 = _text(client.get("/leaderboard/?period=all&page=2"))
        assert re.search(r"2 bo \(you\) 10 1", page2) and "ana" not in page2.split("Leaderboard", 2)[-1]

    def test_it_shows_a_challenge_board(self, client):
        mug = make_label("mug")
        challenge = _today_challenge(mug)
        response = client.get(f"/leaderboard/?challenge={challenge.pk}")
        assert response.status_code == 200
        assert "Mugs in the wild" in _text(response)

    @pytest.mark.parametrize("query", ["period=year", "challenge=999999", "challenge=abc"])
    def test_it_answers_404_for_an_unknown_board(self, client, query):
        assert client.get(f"/leaderboard/?{query}").status_code == 404


class TestGalleryVoting:
    @pytest.fixture
    def photo(self):
        return make_photo(volunteer=make_volunteer("ana"), label=make_label("mug"), status=PhotoStatus.APPROVED)

    def test_it_shows_public_photos_with_their_votes(self, client, photo):
        hidden = make_photo(volunteer=make_volunteer("shy", consent_public_credit=False), status=PhotoStatus.APPROVED)
        pending = make_photo(volunteer=make_volunteer("new"))
        response = client.get("/gallery/")
        html = response.content.decode()
        assert response.status_code == 200
        assert f'data-photo-id="{photo.pk}"' in html and "0 votes" in _text(response)
        assert f'data-photo-id="{hidden.pk}"' not in html and f'data-photo-id="{pending.pk}"' not in html
        assert 'loading="lazy"' in html and 'width="' in html and 'height="' in html

    def test_it_takes_a_vote_and_its_withdrawal_through_plain_forms(self, client, photo):
        voter = make_volunteer("bo")
        client.force_login(voter.user)
        html = client.get("/gallery/").content.decode()
        assert f'action="/gallery/{photo.pk}/vote/"' in html and 'name="csrfmiddlewaretoken"' in html

        response = client.post(f"/gallery/{photo.pk}/vote/", {"action": "vote", "next": "/gallery/?period=week"})
        assert response.status_code == 302
        assert response["Location"] == f"/gallery/?period=week#photo-{photo.pk}"
        assert Vote.objects.filter(voter=voter.user, photo=photo).count() == 1
        page = client.get("/gallery/?period=week")
        assert "1 vote " in _text(page) and "Thank you for your vote!" in _text(page)
        assert "1 vote · ✓ yours Take back" in _text(page)

        client.post(f"/gallery/{photo.pk}/vote/", {"action": "vote"})  # twice: still one vote
        assert Vote.objects.filter(photo=photo).count() == 1

        client.post(f"/gallery/{photo.pk}/vote/", {"action": "withdraw"})
        assert not Vote.objects.filter(photo=photo).exists()
        assert "0 votes" in _text(client.get("/gallery/"))

    def test_it_sends_anonymous_voters_to_sign_in(self, client, photo):
        response = client.post(f"/gallery/{photo.pk}/vote/", {"action": "vote"})
        assert response.status_code == 302
        assert response["Location"] == "/signin/?next=/gallery/"
        response = client.post(f"/gallery/{photo.pk}/vote/", {"action": "vote", "next": "/gallery/?period=week&x=1"})
        assert response["Location"] == "/signin/?next=/gallery/%3Fperiod%3Dweek%26x%3D1"
        assert not Vote.objects.exists()

    def test_it_refuses_a_vote_for_ones_own_photo(self, client, photo):
        client.force_login(photo.volunteer)
        page = client.get("/gallery/")
        assert "Your photo" in _text(page)
        assert f'action="/gallery/{photo.pk}/vote/"' not in page.content.decode()
        response = client.post(f"/gallery/{photo.pk}/vote/", {"action": "vote"}, follow=True)
        assert "You cannot vote for your own photo." in _text(response)
        assert not Vote.objects.exists()

    def test_it_needs_the_csrf_token(self, photo):
        voter = make_volunteer("bo")
        client = Client(enforce_csrf_checks=True)
        client.force_login(voter.user)
        assert client.post(f"/gallery/{photo.pk}/vote/", {"action": "vote"}).status_code == 403
        assert not Vote.objects.exists()

    def test_it_does_not_follow_next_to_another_site(self, client, photo):
        client.force_login(make_volunteer("bo").user)
        response = client.post(f"/gallery/{photo.pk}/vote/", {"action": "vote", "next": "https://evil.example/"})
        assert response["Location"] == f"/gallery/#photo-{photo.pk}"


class TestChallengesPage:
    def test_it_lists_open_upcoming_and_past_challenges_with_winners(self, client):
        mug, cup, pen = make_label("mug"), make_label("cup"), make_label("pen")
        today = periods.challenge_date_at(timezone.now())
        _today_challenge(mug)
        challenge_services.challenge_create(day=today + dt.timedelta(days=2), label=pen, title="Pens at sea")
        past = challenge_services.challenge_create(day=today - dt.timedelta(days=3), label=cup, title="Cups on roofs")
        ana = make_volunteer("ana")
        photo = make_photo(volunteer=ana, label=cup)
        # Entered while it was open: uploaded an hour into its window.
        Photo.objects.filter(pk=photo.pk).update(challenge_id=past.pk, created_at=past.starts_at + dt.timedelta(hours=1))
        from collector import services as collector_services

        collector_services.photo_review(photo_id=photo.pk, reviewer=make_reviewer(), decision="approve")

        response = client.get("/challenges/")
        assert response.status_code == 200
        text = _text(response)
        assert "Open now" in text and "Mugs in the wild" in text
        assert "Coming up" in text and "Pens at sea" in text
        assert "Cups on roofs" in text and "1 approved photo " in text
        assert re.search(r"Cups on roofs .* ana 30 points", text), text  # approval 10 + bonus 20
        assert f'href="/leaderboard/?challenge={past.pk}"' in response.content.decode()


class TestMePoints:
    def test_it_lists_the_points_history(self, client):
        ana = make_volunteer("ana")
        make_photo(volunteer=ana, label=make_label("mug"), status=PhotoStatus.APPROVED)
        client.force_login(ana.user)
        text = _text(client.get("/me/"))
        assert "Photo approved" in text and "+10" in text
        assert "10 points" in text
