"""Votes: a volunteer's vote for someone else's approved photo, and taking it back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from challenges.models import Vote
from challenges.services.points import photo_settle_locked
from collector import selectors as collector_selectors
from collector.models import Photo, PhotoStatus
from config.domain_errors import Conflict, Forbidden, NotAuthenticated, NotFound


@dataclass(frozen=True)
class VoteResult:
    photo_id: int
    votes: int
    voted: bool
    changed: bool


def _photo_for_vote(*, user, photo_id: int) -> Photo:
    photo = collector_selectors.photo_locked(photo_id, required=True)
    if not collector_selectors.photo_can_view(user=user, photo=photo):
        raise NotFound("Not found.")
    return photo


def vote_cast(*, user, photo_id: int, now: dt.datetime | None = None) -> VoteResult:
    """Vote for someone else's approved photo; voting again changes nothing."""
    if not getattr(user, "is_authenticated", False):
        raise NotAuthenticated("Sign in to vote.")
    now = now or timezone.now()
    with transaction.atomic():
        photo = _photo_for_vote(user=user, photo_id=photo_id)
        if photo.is_owned_by(user):
            raise Forbidden("You cannot vote for your own photo.", code="own_photo")
        if photo.status != PhotoStatus.APPROVED:
            raise Conflict("Only approved photos can be voted for.", code="not_approved")
        vote, created = Vote.objects.get_or_create(voter=user, photo=photo)
        if created:
            photo_settle_locked(photo=photo, now=now, actor=user)
        votes = Vote.objects.filter(photo=photo).count()
    return VoteResult(photo_id=photo.pk, votes=votes, voted=True, changed=created)


def vote_withdraw(*, user, photo_id: int, now: dt.datetime | None = None) -> VoteResult:
    """Take a vote back (its points leave the photo's owner); without a vote, nothing changes."""
    if not getattr(user, "is_authenticated", False):
        raise NotAuthenticated("Sign in to vote.")
    now = now or timezone.now()
    with transaction.atomic():
        photo = collector_selectors.photo_locked(photo_id, required=True)
        vote = Vote.objects.filter(voter=user, photo=photo).first()
        if vote is None and not collector_selectors.photo_can_view(user=user, photo=photo):
            raise NotFound("Not found.")
        changed = vote is not None
        if vote is not None:
            vote.delete()
            photo_settle_locked(photo=photo, now=now, actor=user, note="vote taken back")
        votes = Vote.objects.filter(photo=photo).count()
    return VoteResult(photo_id=photo.pk, votes=votes, voted=False, changed=changed)
