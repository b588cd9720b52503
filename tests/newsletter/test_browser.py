"""In a real browser (Debian's chromium) against the live server and a real SMTP server:
subscribe, confirm from the email's link, read an edition on the web with its photos, leave in one click."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from collector.models import PhotoStatus
from newsletter import delivery
from newsletter.models import Subscriber
from tests.factories import image_bytes, make_photo, make_volunteer
from tests.newsletter.conftest import links, make_edition, parts
from tests.pages.conftest import chromium, new_phone, phone, screenshot  # noqa: F401  (shared browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _path(url: str) -> str:
    parts_ = urlsplit(url)
    return parts_.path + (f"?{parts_.query}" if parts_.query else "")


class TestNewsletterInTheBrowser:
    def test_it_subscribes_confirms_shows_photos_and_unsubscribes(self, phone, live_server, smtp, settings):
        settings.SITE_URL = live_server.url
        volunteer = make_volunteer("Framer", consent_public_credit=True)
        photo = make_photo(volunteer=volunteer, status=PhotoStatus.APPROVED, image=image_bytes(size=(96, 64)))

        phone.goto("/newsletter/")
        phone.fill("input[name=email]", "browser@example.org")
        phone.click("button[type=submit]")
        phone.wait_for_selector("text=confirmation link is on its way")
        assert smtp.recipients() == ["browser@example.org"]
        confirm = [u for u in links(parts(smtp.messages[0])[0]) if "/newsletter/confirm/" in u][0]

        phone.goto(_path(confirm))
        assert Subscriber.objects.get().status == "pending"  # opening the link alone confirms nothing
        phone.click("text=Confirm my subscription")
        phone.wait_for_selector("text=You are subscribed")
        assert Subscriber.objects.get().status == "confirmed"

        edition = make_edition(introduction="Seen in a browser", scheduled_for=timezone.now())
        delivery.edition_send(edition_id=edition.pk)
        message = smtp.to("browser@example.org")[-1]
        archive = re.search(r'href="([^"]+/newsletter/archive/\d+/)"', parts(message)[1]).group(1)

        phone.goto(_path(archive))
        image = phone.locator(f'img[src$="/api/v1/photos/{photo.pk}/thumbnail/"]')
        image.wait_for()
        assert phone.evaluate("img => img.complete && img.naturalWidth > 0", image.element_handle())
        assert phone.js_errors == [] and phone.foreign_requests == []
        screenshot(phone, "newsletter-edition")

        one_click = re.search(r"<(https?://[^>]+)>", message["List-Unsubscribe"]).group(1)
        phone.goto(_path(one_click))
        assert Subscriber.objects.get().status == "confirmed"  # GET only shows the button
        phone.click("button:has-text('Unsubscribe')")
        phone.wait_for_selector("text=You are unsubscribed")
        assert Subscriber.objects.get().status == "unsubscribed"
