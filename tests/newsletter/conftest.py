from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.newsletter.smtp import FreePortController, RecordingHandler

_seq = itertools.count(1)


@pytest.fixture
def smtp(settings):
    """A real SMTP server (aiosmtpd) on a free port, with Django's SMTP backend pointed at it."""
    handler = RecordingHandler()
    controller = FreePortController(handler)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    settings.SITE_URL = "https://crowdlens.example"
    settings.NEWSLETTER_FROM_EMAIL = "Crowdlens <news@crowdlens.example>"
    handler.port = controller.port
    yield handler
    controller.stop()


@pytest.fixture(autouse=True)
def _newsletter_defaults(settings):
    settings.NEWSLETTER_REQUIRE_APPROVAL = False
    settings.NEWSLETTER_SKIP_EMPTY = False  # sending tests need editions, not news (TestQuietPeriods checks the default)
    settings.NEWSLETTER_FREQUENCY = "weekly"
    settings.NEWSLETTER_RETRY_BASE_SECONDS = 60
    settings.NEWSLETTER_MAX_ATTEMPTS = 5
    settings.NEWSLETTER_MAX_FAILURES = 3
    settings.NEWSLETTER_CLAIM_LEASE_SECONDS = 600
    settings.NEWSLETTER_BATCH_SIZE = 100
    settings.NEWSLETTER_CONFIRM_RESEND_SECONDS = 600


def make_subscriber(email: str | None = None, *, status: str = "confirmed", user=None):
    from newsletter.models import Subscriber

    return Subscriber.objects.create(email=email or f"reader{next(_seq)}@example.org", status=status, user=user,
                                     confirmed_at=timezone.now() if status == "confirmed" else None)


def make_edition(*, due: bool = True, **fields):
    """The edition of the slot after now, so that photos approved now fall inside its period;
    made due at once unless asked otherwise."""
    from newsletter import services
    from newsletter.models import Edition

    edition = services.edition_compose(now=timezone.now() + timedelta(days=7))
    assert edition is not None
    if due:
        fields.setdefault("scheduled_for", timezone.now() - timedelta(seconds=1))
    if fields:
        Edition.objects.filter(pk=edition.pk).update(**fields)
        edition.refresh_from_db()
    return edition


def links(text: str) -> list[str]:
    return re.findall(r"https?://[^\s<>\"]+", text)


def parts(message):
    """(text, html) of a parsed message."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return (text.get_content() if text else None, html.get_content() if html else None)
