"""One function per email type; each type has subject, text and HTML templates
under newsletter/templates/newsletter/email/ (healthchecks' hc/lib/emails.py habit).

Nothing here sends: callers pass the messages to an open connection, so that
one SMTP connection serves many messages.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import DNS_NAME, sanitize_address
from django.template.loader import render_to_string
from django.urls import reverse

from newsletter import selectors, tokens
from newsletter.models import Edition, Subscriber

# The rendered edition is the same for everyone but for the unsubscribe link:
# templates are rendered once with this marker, which each message replaces.
UNSUBSCRIBE_MARKER = "%%CROWDLENS-UNSUBSCRIBE-URL%%"


def _subject(template: str, context: dict) -> str:
    # Whitespace, CR and LF included, collapses to single spaces: no header can
    # be injected through a subject, whatever an editor typed.
    return " ".join(render_to_string(template, context).split())


def unsubscribe_url(subscriber_id: int) -> str:
    return settings.SITE_URL + reverse("newsletter-unsubscribe-page",
                                       kwargs={"token": tokens.unsubscribe_token(subscriber_id)})


def list_headers(url: str) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers: mail clients show an unsubscribe button that POSTs to ``url``."""
    targets = [f"<{url}>"]
    if settings.NEWSLETTER_UNSUBSCRIBE_MAILTO:
        targets.append(f"<mailto:{settings.NEWSLETTER_UNSUBSCRIBE_MAILTO}?subject=unsubscribe>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"Crowdlens newsletter <newsletter.{_site_host()}>",
        "List-Archive": f"<{settings.SITE_URL}{reverse('newsletter-archive')}>",
    }


def _site_host() -> str:
    host = settings.SITE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host or "localhost"


def confirmation(subscriber: Subscriber) -> EmailMultiAlternatives:
    """Double opt-in: the link leads to a page whose button confirms."""
    url = settings.SITE_URL + reverse("newsletter-confirm-page", kwargs={"token": tokens.confirm_token(subscriber.pk)})
    context = {"confirm_url": url, "site_url": settings.SITE_URL,
               "max_age_days": settings.NEWSLETTER_CONFIRM_MAX_AGE_DAYS}
    message = EmailMultiAlternatives(
        subject=_subject("newsletter/email/confirm_subject.txt", context),
        body=render_to_string("newsletter/email/confirm_body.txt", context),
        from_email=settings.NEWSLETTER_FROM_EMAIL,
        to=[subscriber.email],
    )
    message.attach_alternative(render_to_string("newsletter/email/confirm_body.html", context), "text/html")
    return message


@dataclass(frozen=True)
class RenderedEdition:
    """An edition rendered once; ``message()`` personalises it for one address."""

    subject: str
    text: str
    html: str

    def message(self, *, to: str, unsubscribe: str, connection=None) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives(
            subject=self.subject,
            body=self.text.replace(UNSUBSCRIBE_MARKER, unsubscribe),
            from_email=settings.NEWSLETTER_FROM_EMAIL,
            to=[to],
            headers=list_headers(unsubscribe),
            connection=connection,
        )
        message.attach_alternative(self.html.replace(UNSUBSCRIBE_MARKER, unsubscribe), "text/html")
        return message

    def prepare(self) -> PreparedEdition | None:
        return PreparedEdition.build(self)


# A plain address we can put into prepared bytes as is: ASCII, no quoting, no
# whitespace, no CR/LF. Anything else takes Django's full path (IDNA, checks).
_PLAIN_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$")
_TO_PLACEHOLDER = "to-placeholder-7f3a@crowdlens-placeholder.invalid"
_ID_PLACEHOLDER = "<msgid-placeholder-00000000000000000000@crowdlens-placeholder.invalid>"


class PreparedEdition:
    """The edition's MIME message serialised once; each recipient's bytes are that with three
    substitutions (To, Message-ID, unsubscribe URL).

    Building and folding a multipart MIME message costs more than SMTP itself
    (bench/newsletter.py), so it is done once per batch instead of per message.
    The bytes are the ones Django's own EmailMultiAlternatives produces for a
    placeholder recipient; ``build`` checks that every placeholder survived the
    encoding exactly where expected and returns None otherwise (the caller then
    builds each message the ordinary way).
    """

    def __init__(self, data: bytes, from_address: str, expected_urls: int):
        self.data = data
        self.from_address = from_address
        self.expected_urls = expected_urls
        self.url_prefix, self.url_suffix = unsubscribe_url_parts()
        self.domain = DNS_NAME.get_fqdn() if hasattr(DNS_NAME, "get_fqdn") else str(DNS_NAME)
        self.id_prefix = f"<{uuid.uuid4().hex}."  # unique per prepared batch; a counter makes each message unique
        self.sequence = 0

    @classmethod
    def build(cls, rendered: RenderedEdition) -> PreparedEdition | None:
        message = rendered.message(to=_TO_PLACEHOLDER, unsubscribe=UNSUBSCRIBE_MARKER)
        message.extra_headers["Message-ID"] = _ID_PLACEHOLDER
        data = message.message().as_bytes(linesep="\r\n")
        urls = rendered.text.count(UNSUBSCRIBE_MARKER) + rendered.html.count(UNSUBSCRIBE_MARKER) + 1
        header_end = data.find(b"\r\n\r\n")
        headers = data[:header_end]
        if (data.count(UNSUBSCRIBE_MARKER.encode()) != urls or data.count(_TO_PLACEHOLDER.encode()) != 1
                or f"To: {_TO_PLACEHOLDER}".encode() not in headers or data.count(_ID_PLACEHOLDER.encode()) != 1):
            return None  # encoded (long lines → quoted-printable) or folded: use the ordinary path
        from_address = sanitize_address(message.from_email, message.encoding or settings.DEFAULT_CHARSET)
        return cls(data, from_address, urls)

    def bytes_for(self, *, address: str, token: str) -> bytes | None:
        """The message for one recipient, or None when the address needs Django's full treatment."""
        if not _PLAIN_ADDRESS.match(address) or len(address) > 254:
            return None
        url = f"{self.url_prefix}{token}{self.url_suffix}".encode()
        self.sequence += 1
        message_id = f"{self.id_prefix}{self.sequence}@{self.domain}>".encode()
        # The address goes in last, so that nothing in it can be taken for a placeholder.
        return (self.data.replace(UNSUBSCRIBE_MARKER.encode(), url)
                .replace(_ID_PLACEHOLDER.encode(), message_id)
                .replace(_TO_PLACEHOLDER.encode(), address.encode()))


def unsubscribe_url_parts() -> tuple[str, str]:
    """What comes before and after the token in an unsubscribe URL (computed once, not per message)."""
    sample = "TOKEN-7f3a"
    url = settings.SITE_URL + reverse("newsletter-unsubscribe-page", kwargs={"token": sample})
    before, after = url.split(sample)
    return before, after


def edition(edition: Edition, *, test: bool = False) -> RenderedEdition:
    context = {**selectors.edition_render_context(edition), "unsubscribe_url": UNSUBSCRIBE_MARKER, "test": test,
               "email": True}
    return RenderedEdition(
        subject=_subject("newsletter/email/edition_subject.txt", context),
        text=render_to_string("newsletter/email/edition_body.txt", context),
        html=render_to_string("newsletter/email/edition_body.html", context),
    )


def edition_html_for_web(edition: Edition) -> str:
    """The archive's and the admin preview's copy: the same HTML, without a personal unsubscribe link."""
    context = {**selectors.edition_render_context(edition), "unsubscribe_url": "", "test": False, "email": False}
    return render_to_string("newsletter/email/edition_body.html", context)
