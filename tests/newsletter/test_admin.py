"""Staff in the admin: preview, edit the introduction, send a test to themselves, hold or release, progress."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from collector.models import PhotoStatus
from newsletter import delivery
from newsletter.models import Edition
from tests.factories import image_bytes, make_photo, make_volunteer
from tests.newsletter.conftest import make_edition, make_subscriber, parts

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    user = get_user_model().objects.create_superuser("editor", "editor@example.org", "editor-pass-1")
    client = Client()
    client.force_login(user)
    return client


class TestEditionAdmin:
    def test_it_previews_the_edition_with_its_photos(self, staff, smtp):
        volunteer = make_volunteer("Lens", consent_public_credit=True)
        photo = make_photo(volunteer=volunteer, status=PhotoStatus.APPROVED, image=image_bytes(size=(64, 48)))
        edition = make_edition()

        page = staff.get(f"/admin/newsletter/edition/{edition.pk}/preview/")

        assert page.status_code == 200
        assert f'src="https://crowdlens.example/api/v1/photos/{photo.pk}/thumbnail/"' in page.content.decode()
        assert b"Lens" in page.content

    def test_it_saves_an_edited_introduction_that_the_email_then_shows(self, staff, smtp):
        edition = make_edition()
        make_subscriber("reader@example.org")

        response = staff.post(f"/admin/newsletter/edition/{edition.pk}/change/",
                              {"subject": "A better subject", "introduction": "Welcome, new readers!"})

        assert response.status_code == 302
        edition.refresh_from_db()
        assert edition.introduction == "Welcome, new readers!" and edition.subject == "A better subject"
        delivery.edition_send(edition_id=edition.pk)
        text, html = parts(smtp.messages[0])
        assert "Welcome, new readers!" in text and "Welcome, new readers!" in html
        assert smtp.messages[0]["Subject"] == "A better subject"

    def test_it_refuses_a_subject_on_two_lines(self, staff):
        edition = make_edition()

        response = staff.post(f"/admin/newsletter/edition/{edition.pk}/change/",
                              {"subject": "Hi\r\nBcc: x@example.org", "introduction": ""})

        assert response.status_code == 200 and b"single line" in response.content
        edition.refresh_from_db()
        assert "Bcc" not in edition.subject

    def test_it_sends_a_test_to_the_staff_member_only(self, staff, smtp):
        edition = make_edition()
        make_subscriber("reader@example.org")

        response = staff.post(f"/admin/newsletter/edition/{edition.pk}/do/send_test/")

        assert response.status_code == 302
        assert smtp.recipients() == ["editor@example.org"]
        assert smtp.messages[0]["Subject"] == f"[Test] {edition.subject}"
        assert smtp.messages[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        edition.refresh_from_db()
        assert edition.status == "scheduled" and not edition.deliveries.exists()

    def test_it_holds_and_releases_from_the_change_page(self, staff, settings):
        settings.NEWSLETTER_REQUIRE_APPROVAL = True
        edition = make_edition()
        assert edition.status == "awaiting_approval"

        page = staff.get(f"/admin/newsletter/edition/{edition.pk}/change/")
        assert b">Release</button>" in page.content and b">Hold</button>" in page.content
        staff.post(f"/admin/newsletter/edition/{edition.pk}/do/hold/")
        edition.refresh_from_db()
        assert edition.status == "held"
        staff.post(f"/admin/newsletter/edition/{edition.pk}/do/release/")
        edition.refresh_from_db()
        assert edition.status == "scheduled" and edition.released_by.username == "editor"

    def test_it_shows_sending_progress(self, staff, smtp):
        for _ in range(3):
            make_subscriber()
        gone = make_subscriber("gone@example.org")
        smtp.refuse_permanently.add(gone.email)
        edition = make_edition()
        delivery.edition_send(edition_id=edition.pk)

        page = staff.get("/admin/newsletter/edition/").content.decode()

        assert re.search(r'<progress max="4" value="4"', page)
        assert "3 of 4 sent" in page and "1 failed" in page

    def test_it_is_refused_to_a_non_staff_user(self):
        edition = make_edition()
        client = Client()
        client.force_login(make_volunteer().user)

        response = client.post(f"/admin/newsletter/edition/{edition.pk}/do/hold/")

        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        assert Edition.objects.get().status == "scheduled"


class TestComposeNow:
    """An operator need not wait for the period's hour to see and prepare the next edition."""

    def test_it_composes_the_next_edition_from_the_period_so_far(self, staff, smtp, settings):
        from django.core.management import call_command
        from django.utils import timezone

        from newsletter import selectors

        settings.NEWSLETTER_SKIP_EMPTY = True  # the period before this one brought nothing: no edition of its own
        make_subscriber()
        volunteer = make_volunteer("Lens", consent_public_credit=True)
        photo = make_photo(volunteer=volunteer, status=PhotoStatus.APPROVED, image=image_bytes(size=(64, 48)))
        assert "Compose the next edition now" in staff.get("/admin/newsletter/edition/").content.decode()

        response = staff.post("/admin/newsletter/edition/compose-now/", follow=True)

        edition = Edition.objects.get()
        next_slot = selectors.slot_latest() + selectors.period_length()
        assert edition.period_end == edition.scheduled_for == next_slot > timezone.now()
        assert response.redirect_chain[-1][0] == f"/admin/newsletter/edition/{edition.pk}/change/"
        assert "goes out at its slot" in response.content.decode()
        preview = staff.get(f"/admin/newsletter/edition/{edition.pk}/preview/").content.decode()
        assert f"/api/v1/photos/{photo.pk}/thumbnail/" in preview
        call_command("newsletter_send", "--no-progress")  # its slot has not come: not sent, not composed twice
        assert Edition.objects.count() == 1 and smtp.messages == [] and not edition.deliveries.exists()

    def test_it_says_why_when_there_is_nothing_to_report_yet(self, staff, settings):
        settings.NEWSLETTER_SKIP_EMPTY = True

        response = staff.post("/admin/newsletter/edition/compose-now/", follow=True)

        assert Edition.objects.count() == 0
        assert "nothing to report yet" in response.content.decode()

    def test_it_says_so_when_the_next_edition_is_already_composed(self, staff):
        make_photo(volunteer=make_volunteer("Lens", consent_public_credit=True), status=PhotoStatus.APPROVED,
                   image=image_bytes(size=(64, 48)))
        staff.post("/admin/newsletter/edition/compose-now/")

        response = staff.post("/admin/newsletter/edition/compose-now/", follow=True)

        assert Edition.objects.count() == 1 and "already composed" in response.content.decode()


class TestListsInTheAdmin:
    def test_it_lists_subscribers_and_deliveries_with_their_states(self, staff, smtp):
        make_subscriber("ok@example.org")
        bad = make_subscriber("bounce@example.org")
        smtp.refuse_permanently.add(bad.email)
        delivery.edition_send(edition_id=make_edition().pk)

        subscribers = staff.get("/admin/newsletter/subscriber/?q=bounce").content.decode()
        deliveries = staff.get("/admin/newsletter/delivery/?status__exact=failed").content.decode()

        assert "bounce@example.org" in subscribers and "ok@example.org" not in subscribers
        assert "550" in deliveries and "bounce@example.org" in deliveries
        assert staff.get("/admin/newsletter/delivery/add/").status_code == 403
