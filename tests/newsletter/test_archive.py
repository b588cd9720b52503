"""The public archive of past editions: page and API; editions not yet out stay private."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from newsletter import delivery
from tests.newsletter.conftest import make_edition, make_subscriber, parts

pytestmark = pytest.mark.django_db


class TestArchivePages:
    def test_it_lists_sent_editions_and_shows_each_without_a_personal_link(self, smtp):
        make_subscriber("reader@example.org")
        sent = make_edition(introduction="Sent one")
        delivery.edition_send(edition_id=sent.pk)
        client = Client()

        index = client.get("/newsletter/archive/")
        detail = client.get(f"/newsletter/archive/{sent.pk}/")

        assert index.status_code == 200 and sent.subject.encode() in index.content
        assert detail.status_code == 200 and b"Sent one" in detail.content
        assert b"/newsletter/unsubscribe/" not in detail.content
        # Each email links to its archive page.
        text, html = parts(smtp.messages[0])
        assert f"https://crowdlens.example/newsletter/archive/{sent.pk}/" in html

    def test_it_hides_an_edition_that_has_not_gone_out(self):
        waiting = make_edition()

        assert Client().get(f"/newsletter/archive/{waiting.pk}/").status_code == 404
        assert waiting.subject.encode() not in Client().get("/newsletter/archive/").content


class TestEditionApi:
    def test_it_lists_and_shows_sent_editions_only(self, smtp):
        sent = make_edition()
        delivery.edition_send(edition_id=sent.pk)
        from newsletter.models import Edition

        waiting = Edition.objects.create(period_start=sent.period_end, period_end=sent.period_end.replace(year=2100),
                                         subject="Future", status="scheduled", scheduled_for=sent.period_end)
        client = APIClient()

        listing = client.get("/api/v1/newsletter/editions/")
        detail = client.get(f"/api/v1/newsletter/editions/{sent.pk}/")
        hidden = client.get(f"/api/v1/newsletter/editions/{waiting.pk}/")

        assert listing.status_code == 200 and [e["id"] for e in listing.json()] == [sent.pk]
        assert detail.status_code == 200 and detail.json()["web_url"] == f"/newsletter/archive/{sent.pk}/"
        assert "best_photos" in detail.json()["content"]
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
