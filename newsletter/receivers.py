"""Reactions to other apps' events, connected in NewsletterConfig.ready (see docs/decisions.md)."""

from __future__ import annotations

from django.db.models import Q

from newsletter.models import Subscriber, SubscriberStatus


def forget_deleted_user(sender, instance, **kwargs):
    """A volunteer who deletes their account leaves the newsletter too, but takes only what is theirs.

    A subscription linked to the account (they asked for it while signed in) goes, with its delivery
    history, when it is for the account's own address, or when nobody confirmed it (a request that
    leaves with its requester). A confirmed subscription for another address belongs to whoever
    confirmed it from that mailbox: it stays, unlinked (the foreign key is SET_NULL).
    """
    own_address = Q(email__iexact=instance.email) if instance.email else Q(pk__in=[])
    Subscriber.objects.filter(user=instance).filter(own_address | ~Q(status=SubscriberStatus.CONFIRMED)).delete()
