"""The verify page without JavaScript (the test client): who sees what, and a verdict posted as a plain form."""

from __future__ import annotations

import pytest

from collector.models import PhotoStatus, Verification
from tests.factories import make_label, make_photo, make_volunteer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def community(settings):
    settings.COMMUNITY_REVIEW_MIN_APPROVED = 1
    settings.COMMUNITY_REVIEW_GOLD_EVERY = 1000


def signed_in(client, volunteer):
    client.force_login(volunteer.user)
    return client


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/verify/")
    assert response.status_code == 302 and response["Location"].startswith("/signin/")


def test_a_newcomer_is_told_when_verifying_opens(client, settings):
    settings.COMMUNITY_REVIEW_MIN_APPROVED = 5
    make_photo(label=make_label("tulip"))
    page = signed_in(client, make_volunteer()).get("/verify/").content.decode()
    assert "Verifying opens after 5 of your own photos have been approved." in page
    assert 'name="verdict"' not in page


def test_a_verdict_posted_as_a_form_is_recorded_and_the_next_photo_follows(client):
    tulip, rose = make_label("tulip", name="Tulip"), make_label("rose", name="Rose")
    first, second = make_photo(label=tulip), make_photo(label=tulip)
    me = make_volunteer()
    make_photo(volunteer=me, label=rose, status=PhotoStatus.APPROVED)
    client = signed_in(client, me)
    page = client.get("/verify/").content.decode()
    assert f'name="photo" value="{first.pk}"' in page and "Is this tulip?" in page
    response = client.post("/verify/", {"photo": first.pk, "verdict": "disagree", "label": "rose"}, follow=True)
    page = response.content.decode()
    assert f"your verdict on photo #{first.pk} is in" in page
    assert f'name="photo" value="{second.pk}"' in page
    verdict = Verification.objects.get(verifier=me.user)
    assert (verdict.photo_id, verdict.verdict, verdict.label.slug) == (first.pk, "disagree", "rose")
    again = client.post("/verify/", {"photo": first.pk, "verdict": "agree"}, follow=True).content.decode()
    assert "You have already judged this photo." in again
    assert Verification.objects.count() == 1
