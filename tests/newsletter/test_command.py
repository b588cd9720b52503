"""`manage.py newsletter_send`: composes when the slot has passed, sends due editions, shows progress."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from newsletter import services
from newsletter.models import Delivery, Edition
from tests.newsletter.conftest import make_subscriber

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command("newsletter_send", *args, stdout=out)
    return out.getvalue()


class TestNewsletterSendCommand:
    def test_it_composes_the_due_edition_and_sends_it_with_a_progress_bar(self, smtp, capsys):
        readers = [make_subscriber() for _ in range(3)]
        make_subscriber("pending@example.org", status="pending")

        out = _run()

        edition = Edition.objects.get()
        assert f"Composed edition {edition.pk}" in out
        assert f"Edition {edition.pk}: 3 sent" in out and "(finished)" in out
        assert "3/3" in capsys.readouterr().err  # tqdm's bar
        assert sorted(smtp.recipients()) == sorted(r.email for r in readers)
        edition.refresh_from_db()
        assert edition.status == "sent"

        again = _run()  # the next hourly run: nothing new to compose or send
        assert "Composed" not in again and len(smtp.recipients()) == 3

    def test_it_waits_for_approval_when_the_setting_asks_for_it(self, smtp, settings):
        settings.NEWSLETTER_REQUIRE_APPROVAL = True
        make_subscriber("reader@example.org")

        _run("--no-progress")
        edition = Edition.objects.get()
        assert edition.status == "awaiting_approval" and smtp.recipients() == []
        assert not Delivery.objects.exists()

        services.edition_release(edition_id=edition.pk)
        out = _run("--no-progress")

        assert smtp.recipients() == ["reader@example.org"]
        assert f"Edition {edition.pk}: 1 sent" in out

    def test_it_fails_loudly_when_the_mail_server_is_unreachable_and_keeps_the_rows(self, smtp, settings):
        from django.core.management.base import CommandError

        make_subscriber()
        settings.EMAIL_PORT = _closed_port()

        with pytest.raises(CommandError, match="Cannot reach the mail server"):
            _run("--no-progress")

        assert list(Delivery.objects.values_list("status", flat=True)) == ["pending"]

    def test_it_refuses_an_unknown_edition(self):
        from django.core.management.base import CommandError

        with pytest.raises(CommandError, match="No edition 999"):
            _run("--edition", "999")


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
