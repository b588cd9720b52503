"""Reactions to other apps' events (connected in NewsletterConfig.ready)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from newsletter.models import Subscriber


@receiver(pre_delete, sender=get_user_model(), dispatch_uid="newsletter-forget-deleted-user")
def forget_deleted_user(sender, instance, **kwargs):
    """A volunteer who deletes their account leaves the newsletter too: the address they subscribed
    with is personal data tied to that account, so it goes (with its delivery history)."""
    Subscriber.objects.filter(user=instance).delete()
