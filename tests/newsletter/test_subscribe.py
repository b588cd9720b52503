"""Subscribing: double opt-in through a signed link, answers that reveal nothing, one-click unsubscribe."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from newsletter import tokens
from newsletter.models import Subscriber
from tests.factories import client_for, make_volunteer
from tests.newsletter.conftest import links, make_subscriber, parts

pytestmark = pytest.mark.django_db


def _subscribe(client, email, capture):
    with capture(execute=True):
        return client.post("/api/v1/newsletter/subscribe/", {"email": email}, format="json")


def _confirm_link(message) -> str:
    text, html = parts(message)
    found = [u for u in links(text) if "/newsletter/confirm/" in u]
    assert len(found) == 1, text
    assert found[0] in html
    return found[0]


class TestSubscribeApi:
    def test_it_sends_a_confirmation_whose_link_confirms_after_the_button(self, smtp, django_capture_on_commit_callbacks):
        response = _subscribe(APIClient(), "  Ada@Example.org ", django_capture_on_commit_callbacks)

        assert response.status_code == 202
        subscriber = Subscriber.objects.get()
        assert subscriber.email == "ada@example.org" and subscriber.status == "pending"
        assert smtp.recipients() == ["ada@example.org"]
        message = smtp.messages[0]
        assert message["To"] == "ada@example.org"
        assert message["From"] == "Crowdlens <news@crowdlens.example>"
        assert "Confirm" in message["Subject"]
        link = _confirm_link(message)
        assert link.startswith("https://crowdlens.example/newsletter/confirm/")

        browser = Client()
        path = urlsplit(link).path
        page = browser.get(path)  # a mail scanner following the link confirms nothing
        assert page.status_code == 200 and b"Confirm my subscription" in page.content
        assert Subscriber.objects.get().status == "pending"

        page = browser.post(path)
        assert page.status_code == 200 and b"You are subscribed" in page.content
        subscriber.refresh_from_db()
        assert subscriber.status == "confirmed" and subscriber.confirmed_at is not None

    def test_its_confirmation_email_wears_the_site_colours(self, smtp, django_capture_on_commit_callbacks):
        """The HTML part uses the colours of the site's pages (static/css/site.css), inline: no stylesheet in mail."""
        import re
        from pathlib import Path

        from django.conf import settings

        css = (Path(settings.BASE_DIR) / "static" / "css" / "site.css").read_text()
        colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})", css))
        _subscribe(APIClient(), "ada@example.org", django_capture_on_commit_callbacks)
        _text, html = parts(smtp.messages[0])
        button = re.search(r'<a href="[^"]*/newsletter/confirm/[^"]*" style="([^"]*)"', html)
        assert button, html
        assert f"background:{colours['accent']}" in button.group(1)  # the site's primary colour
        assert f"color:{colours['fg']}" in html and f"color:{colours['muted']}" in html
        assert "<style" not in html and "var(--" not in html

    def test_it_answers_the_same_whether_the_address_is_new_pending_or_confirmed(
        self, smtp, django_capture_on_commit_callbacks
    ):
        make_subscriber("known@example.org", status="confirmed")
        client = APIClient()

        new = _subscribe(client, "new@example.org", django_capture_on_commit_callbacks)
        again = _subscribe(client, "new@example.org", django_capture_on_commit_callbacks)
        known = _subscribe(client, "known@example.org", django_capture_on_commit_callbacks)

        assert new.status_code == again.status_code == known.status_code == 202
        assert new.json() == again.json() == known.json()
        # One harmless confirmation for the new address (not two), nothing to the confirmed one.
        assert smtp.recipients() == ["new@example.org"]
        assert Subscriber.objects.get(email="known@example.org").status == "confirmed"

    def test_it_sends_a_fresh_confirmation_once_the_resend_window_passed(self, smtp, django_capture_on_commit_callbacks):
        client = APIClient()
        _subscribe(client, "late@example.org", django_capture_on_commit_callbacks)
        Subscriber.objects.filter(email="late@example.org").update(
            confirmation_sent_at=timezone.now() - timedelta(hours=1))

        _subscribe(client, "late@example.org", django_capture_on_commit_callbacks)

        assert smtp.recipients() == ["late@example.org", "late@example.org"]

    @pytest.mark.parametrize("email", ["a@example.org\r\nBcc: victim@example.org", "not-an-address", "",
                                       "x@example.org\nSubject: hi"])
    def test_it_refuses_a_malformed_address_with_the_error_shape(self, smtp, email, django_capture_on_commit_callbacks):
        response = _subscribe(APIClient(), email, django_capture_on_commit_callbacks)

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"
        assert "email" in response.json()["error"]["fields"]
        assert Subscriber.objects.count() == 0
        assert smtp.messages == []

    def test_it_links_a_signed_in_volunteer(self, smtp, django_capture_on_commit_callbacks):
        volunteer = make_volunteer(email="vol@example.org")

        response = _subscribe(client_for(volunteer.user), "", django_capture_on_commit_callbacks)

        assert response.status_code == 202
        subscriber = Subscriber.objects.get()
        assert subscriber.email == "vol@example.org" and subscriber.user == volunteer.user
        assert smtp.recipients() == ["vol@example.org"]


class TestConfirmApi:
    def test_a_link_confirms_only_the_subscription_it_was_sent_for(self, smtp, settings,
                                                                   django_capture_on_commit_callbacks):
        """Issue 20: after an unsubscribe and a third party's re-subscribe, the first email's link confirmed."""
        settings.NEWSLETTER_CONFIRM_RESEND_SECONDS = 0
        _subscribe(APIClient(), "owner@example.org", django_capture_on_commit_callbacks)
        first_link = urlsplit(_confirm_link(smtp.messages[0])).path
        first_token = first_link.rstrip("/").rsplit("/", 1)[1]
        assert APIClient().post("/api/v1/newsletter/confirm/", {"token": first_token}, format="json").status_code == 200
        subscriber = Subscriber.objects.get()
        assert APIClient().post("/api/v1/newsletter/unsubscribe/", {"token": tokens.unsubscribe_token(subscriber.pk)},
                                format="json").json() == {"status": "unsubscribed"}

        _subscribe(APIClient(), "owner@example.org", django_capture_on_commit_callbacks)  # someone else
        assert Subscriber.objects.get().status == "pending" and len(smtp.messages) == 2

        replayed = APIClient().post("/api/v1/newsletter/confirm/", {"token": first_token}, format="json")
        assert replayed.status_code == 400 and replayed.json()["error"]["code"] == "invalid_token"
        page = Client().post(first_link)
        assert page.status_code == 400
        assert Subscriber.objects.get().status == "pending"
        # The owner's own new email still confirms.
        second_link = urlsplit(_confirm_link(smtp.messages[1])).path
        assert Client().post(second_link).status_code == 200
        assert Subscriber.objects.get().status == "confirmed"

    def test_every_confirmation_email_of_one_subscription_works(self, smtp, settings,
                                                                django_capture_on_commit_callbacks):
        settings.NEWSLETTER_CONFIRM_RESEND_SECONDS = 0
        _subscribe(APIClient(), "twice@example.org", django_capture_on_commit_callbacks)
        _subscribe(APIClient(), "twice@example.org", django_capture_on_commit_callbacks)  # "I got no email"
        assert Client().post(urlsplit(_confirm_link(smtp.messages[0])).path).status_code == 200
        assert Subscriber.objects.get().status == "confirmed"

    def test_it_confirms_with_a_valid_token(self):
        subscriber = make_subscriber(status="pending")

        response = APIClient().post("/api/v1/newsletter/confirm/", {"token": tokens.confirm_token(subscriber.pk)},
                                    format="json")

        assert response.status_code == 200 and response.json() == {"status": "confirmed"}
        subscriber.refresh_from_db()
        assert subscriber.status == "confirmed"

    def test_it_refuses_a_forged_or_expired_token(self, settings):
        subscriber = make_subscriber(status="pending")
        forged = tokens.confirm_token(subscriber.pk)[:-2] + "xx"
        settings.NEWSLETTER_CONFIRM_MAX_AGE_DAYS = 1
        old = tokens.confirm_token(subscriber.pk)

        bad = APIClient().post("/api/v1/newsletter/confirm/", {"token": forged}, format="json")
        with pytest.MonkeyPatch.context() as mp:
            import time as time_module

            real = time_module.time
            mp.setattr(time_module, "time", lambda: real() + 2 * 86400)
            expired = APIClient().post("/api/v1/newsletter/confirm/", {"token": old}, format="json")

        assert bad.status_code == expired.status_code == 400
        assert bad.json()["error"]["code"] == expired.json()["error"]["code"] == "invalid_token"
        subscriber.refresh_from_db()
        assert subscriber.status == "pending"

    def test_it_refuses_an_unsubscribe_token_as_a_confirmation(self):
        subscriber = make_subscriber(status="pending")

        response = APIClient().post("/api/v1/newsletter/confirm/",
                                    {"token": tokens.unsubscribe_token(subscriber.pk)}, format="json")

        assert response.status_code == 400
        subscriber.refresh_from_db()
        assert subscriber.status == "pending"


class TestUnsubscribePage:
    def test_it_shows_a_button_on_get_and_unsubscribes_on_post_without_csrf(self):
        subscriber = make_subscriber()
        path = f"/newsletter/unsubscribe/{tokens.unsubscribe_token(subscriber.pk)}/"
        client = Client(enforce_csrf_checks=True)

        page = client.get(path)
        subscriber.refresh_from_db()
        assert page.status_code == 200 and b"<button" in page.content
        assert subscriber.status == "confirmed"

        done = client.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
        subscriber.refresh_from_db()
        assert done.status_code == 200 and b"You are unsubscribed" in done.content
        assert subscriber.status == "unsubscribed" and subscriber.unsubscribed_at is not None

    def test_it_refuses_a_forged_link(self):
        subscriber = make_subscriber()

        response = Client().post(f"/newsletter/unsubscribe/{subscriber.pk}:forged/")

        assert response.status_code == 400
        subscriber.refresh_from_db()
        assert subscriber.status == "confirmed"


class TestSubscribePage:
    def test_it_subscribes_through_the_form(self, smtp, django_capture_on_commit_callbacks):
        client = Client()
        assert client.get("/newsletter/").status_code == 200

        with django_capture_on_commit_callbacks(execute=True):
            page = client.post("/newsletter/", {"email": "form@example.org"})

        assert page.status_code == 200 and b"confirmation link is on its way" in page.content
        assert Subscriber.objects.get().email == "form@example.org"
        assert smtp.recipients() == ["form@example.org"]

    def test_it_shows_the_error_for_a_bad_address(self, smtp):
        page = Client().post("/newsletter/", {"email": "nope"})

        assert page.status_code == 400 and b"valid email" in page.content
        assert Subscriber.objects.count() == 0


class TestSubscribeThrottle:
    def test_it_limits_the_form_and_the_api_per_client(self, smtp, monkeypatch, django_capture_on_commit_callbacks):
        from rest_framework.throttling import ScopedRateThrottle

        monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "newsletter_subscribe", "2/hour")
        client, api = Client(), APIClient()

        with django_capture_on_commit_callbacks(execute=True):
            pages = [client.post("/newsletter/", {"email": f"p{i}@example.org"}).status_code for i in range(3)]
        answers = [_subscribe(api, f"a{i}@example.org", django_capture_on_commit_callbacks).status_code
                   for i in range(3)]

        assert pages == [200, 200, 429]
        assert answers == [429, 429, 429]  # same client address: the limit is shared
        assert sorted(smtp.recipients()) == ["p0@example.org", "p1@example.org"]
        assert Subscriber.objects.count() == 2


class TestAccountDeletion:
    def test_it_forgets_the_subscription_of_a_volunteer_who_deletes_their_account(self):
        volunteer = make_volunteer(email="gone@example.org")
        mine = make_subscriber("gone@example.org", user=volunteer.user)
        other = make_subscriber("other@example.org")

        response = client_for(volunteer.user).delete("/api/v1/me/")

        assert response.status_code == 204
        assert not Subscriber.objects.filter(pk=mine.pk).exists()
        assert Subscriber.objects.filter(pk=other.pk).exists()

    def test_it_never_deletes_a_subscription_someone_else_confirmed(self, smtp, django_capture_on_commit_callbacks):
        volunteer = make_volunteer(email="leaver@example.org")
        client = client_for(volunteer.user)
        _subscribe(client, "friend@example.org", django_capture_on_commit_callbacks)  # new: linked to them
        _subscribe(client, "typo@example.org", django_capture_on_commit_callbacks)
        friend = Subscriber.objects.get(email="friend@example.org")
        assert friend.user == volunteer.user
        confirmed = APIClient().post("/api/v1/newsletter/confirm/", {"token": tokens.confirm_token(friend.pk)},
                                     format="json")  # the friend confirms from their mailbox
        assert confirmed.status_code == 200

        response = client.delete("/api/v1/me/")

        assert response.status_code == 204
        friend.refresh_from_db()
        assert friend.status == "confirmed" and friend.user is None, "the friend's subscription stays, unlinked"
        assert not Subscriber.objects.filter(email="typo@example.org").exists(), "an unconfirmed request leaves"


class TestSubscriptionOwnership:
    """A signed-in request for an address never takes over the subscription of whoever has it."""

    @pytest.mark.parametrize("status", ["pending", "unsubscribed", "disabled"])
    def test_the_api_never_relinks_another_volunteers_subscription(self, smtp, status,
                                                                   django_capture_on_commit_callbacks):
        owner = make_volunteer(email="owner@example.org")
        theirs = make_subscriber("owner@example.org", status=status, user=owner.user)
        intruder = make_volunteer()

        response = _subscribe(client_for(intruder.user), "Owner@Example.org", django_capture_on_commit_callbacks)

        assert response.status_code == 202
        theirs.refresh_from_db()
        assert theirs.user == owner.user
        assert client_for(intruder.user).delete("/api/v1/me/").status_code == 204
        assert Subscriber.objects.filter(pk=theirs.pk, user=owner.user).exists(), "deleting the intruder kept it"

    def test_the_api_never_links_an_existing_anonymous_subscription(self, smtp, django_capture_on_commit_callbacks):
        _subscribe(APIClient(), "anon@example.org", django_capture_on_commit_callbacks)
        intruder = make_volunteer()

        _subscribe(client_for(intruder.user), "anon@example.org", django_capture_on_commit_callbacks)

        assert Subscriber.objects.get(email="anon@example.org").user is None
        assert client_for(intruder.user).delete("/api/v1/me/").status_code == 204
        assert Subscriber.objects.filter(email="anon@example.org").exists()

    def test_the_form_never_relinks_another_volunteers_subscription(self, smtp, django_capture_on_commit_callbacks):
        owner = make_volunteer(email="owner@example.org")
        theirs = make_subscriber("owner@example.org", status="pending", user=owner.user)
        intruder = make_volunteer()
        browser = Client()
        browser.force_login(intruder.user)

        with django_capture_on_commit_callbacks(execute=True):
            page = browser.post("/newsletter/", {"email": "owner@example.org"})

        assert page.status_code == 200
        theirs.refresh_from_db()
        assert theirs.user == owner.user
