"""Reactions to other apps' events, connected in NewsletterConfig.ready (see docs/decisions.md)."""

from __future__ import annotations

from newsletter.models import Subscriber


def forget_deleted_user(sender, instance, **kwargs):
    """A volunteer who deletes their account leaves the newsletter too: the address they subscribed
    with is personal data tied to that account, so it goes (with its delivery history)."""
    Subscriber.objects.filter(user=instance).delete()
