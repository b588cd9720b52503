"""The points ledger: what a photo's owner should hold for it, and writing only the difference.

How points stay exact (docs/challenges.md has the long version):

* Every change that can move a photo's points (review, relabel, withdrawal,
  vote, feature, novelty) runs with that photo's row locked
  (``photo_lock``; collector's review already holds it when its signal
  arrives) and calls ``photo_settle_locked``: it computes which grants the
  photo *should* have now, compares with the active grants in the ledger and
  writes only the difference, as new ledger rows. Settling twice changes
  nothing, so a repeated signal or a retried request cannot double-count.
* Each ledger row moves the Score rows of its periods in the same
  transaction (``challenges.services.scores.scores_add``).
* Partial unique indexes on the ledger (one active grant per photo and
  reason, one per vote) back this up inside the database.
* A bootstrap account's photos (photos_import: data, not fame) should hold
  nothing, so settling takes back whatever they held and grants nothing new.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from challenges import periods
from challenges.models import Challenge, PhotoOfTheDay, PhotoNovelty, PointEntry, PointReason, Vote
from challenges.services.scores import scores_add
from collector import selectors as collector_selectors
from collector.models import Photo, PhotoStatus


def photo_lock(photo_id: int) -> Photo | None:
    """The photo's row, locked until the caller's transaction ends, or None where a missing photo is no
    error (settling, revoking, unfeaturing); a caller for whom it is one passes ``required=True`` to
    ``collector.selectors.photo_locked``.

    Every write that can move a photo's points takes this lock first, so two of them never settle one
    photo at once."""
    return collector_selectors.photo_locked(photo_id)


def _score_keys(entry: PointEntry) -> list[str]:
    keys = [*periods.period_keys(entry.earned_at), periods.ALL_TIME_KEY]
    if entry.challenge_id is not None:
        keys.append(periods.challenge_key(entry.challenge_id))
    return keys


def _ledger_write(entries: list[PointEntry]) -> None:
    """Insert ledger rows and move their Score rows, in the caller's transaction."""
    if not entries:
        return
    PointEntry.objects.bulk_create(entries)
    deltas: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        photos = entry.approved_photos_delta
        if entry.points == 0 and photos == 0:
            continue
        for key in _score_keys(entry):
            d = deltas[(entry.volunteer_id, key)]
            d[0] += entry.points
            d[1] += photos
    scores_add(deltas)


# An upload is validated just before its row is created; image processing in
# between may carry the creation a little past the end of the window.
_ENTRY_GRACE = dt.timedelta(minutes=10)


def _entered_challenge(photo: Photo) -> Challenge | None:
    """The challenge a photo counts toward: it was uploaded while open, and still has the challenge's label."""
    if not photo.challenge_id:
        return None
    challenge = Challenge.objects.filter(pk=photo.challenge_id).first()
    if challenge is None or challenge.label_id != photo.label_id:
        return None
    if photo.created_at is not None and not (challenge.starts_at <= photo.created_at < challenge.ends_at + _ENTRY_GRACE):
        return None
    return challenge


def _photo_targets(photo: Photo) -> tuple[dict[tuple[str, int | None], tuple[int, int | None]], Challenge | None]:
    """What the photo's owner should hold for it now: {(reason, vote id): (points, actor id)}, and its challenge."""
    if photo.status != PhotoStatus.APPROVED or photo.volunteer_id is None:
        return {}, None
    if collector_selectors.volunteer_is_bootstrap(user_id=photo.volunteer_id):
        return {}, None  # imported data earns its account no fame
    if photo.audit_outcome == "relabelled":
        return {}, None  # the label audit caught a wrong label a reviewer let through: it earns nothing
    challenge = _entered_challenge(photo)
    targets: dict[tuple[str, int | None], tuple[int, int | None]] = {
        (PointReason.APPROVED, None): (settings.POINTS_PHOTO_APPROVED, photo.reviewed_by_id),
    }
    if challenge is not None:
        targets[(PointReason.CHALLENGE_BONUS, None)] = (challenge.bonus_points, None)
    feature = PhotoOfTheDay.objects.filter(photo_id=photo.pk).values_list("featured_by_id", flat=True)[:1]
    if feature:
        targets[(PointReason.FEATURED, None)] = (settings.POINTS_FEATURED, feature[0])
    novelty = PhotoNovelty.objects.filter(photo_id=photo.pk).values_list("points", flat=True).first()
    if novelty:
        targets[(PointReason.NOVELTY, None)] = (novelty, None)
    # Stump the model (issue 19): the server's own prediction, never the phone's claim, against the approved label.
    prediction = collector_selectors.photo_server_prediction(photo_id=photo.pk)
    if prediction is not None and prediction.label != photo.label.slug and settings.POINTS_STUMPED:
        targets[(PointReason.STUMPED, None)] = (settings.POINTS_STUMPED, None)
    for vote_id, voter_id in Vote.objects.filter(photo_id=photo.pk).exclude(voter_id=photo.volunteer_id).values_list("id", "voter_id"):
        targets[(PointReason.VOTE, vote_id)] = (settings.POINTS_PER_VOTE, voter_id)
    return targets, challenge


def _verify_targets(photo: Photo) -> dict[int, int]:
    """{verification id: verifier id} for the community verdicts that match the photo's final decision: an
    agree on a photo staff or the crowd approved under the label shown, a disagree on one rejected or moved to
    another label. Pending photos, gold and unsure verdicts earn nothing (random clicking earns nothing)."""
    from collector.models import Verdict

    if photo.status not in (PhotoStatus.APPROVED, PhotoStatus.REJECTED):
        return {}
    targets = {}
    for vid, verifier_id, verdict, label_id, shown_id in collector_selectors.verdicts_counted(photo_id=photo.pk):
        if photo.status == PhotoStatus.APPROVED:
            right = photo.label_id == shown_id
            matches = (verdict == Verdict.AGREE and right) or (
                verdict == Verdict.DISAGREE and not right and label_id in (None, photo.label_id))
        else:
            matches = verdict == Verdict.DISAGREE
        if matches and verifier_id != photo.volunteer_id:
            targets[vid] = verifier_id
    return targets


def photo_settle_locked(*, photo: Photo, now: dt.datetime, actor=None, note: str = "", revoke_all: bool = False) -> int:
    """Bring the ledger in line with the photo's state. The caller holds the photo's row lock.

    ``revoke_all`` takes every point of the photo back (the photo is being deleted).
    Returns the number of ledger rows written (0 when nothing changed).
    """
    targets, challenge = ({}, None) if revoke_all else _photo_targets(photo)
    verify_targets = {} if revoke_all else _verify_targets(photo)
    challenge_id = challenge.pk if challenge else None
    active = list(PointEntry.objects.filter(photo_id=photo.pk, active=True))
    keep, keep_verify, take_back = set(), set(), []
    for grant in active:
        if grant.reason == PointReason.VERIFY:  # the verifier's, not the owner's
            if verify_targets.get(grant.verification_id) == grant.volunteer_id and grant.verification_id not in keep_verify:
                keep_verify.add(grant.verification_id)
            else:
                take_back.append(grant)
            continue
        key = (grant.reason, grant.vote_id if grant.reason == PointReason.VOTE else None)
        if key in targets and key not in keep and grant.challenge_id == challenge_id and grant.volunteer_id == photo.volunteer_id:
            keep.add(key)
        else:
            take_back.append(grant)
    entries = []
    actor_id = getattr(actor, "pk", None)
    if take_back:
        ids = [g.pk for g in take_back]
        claimed = PointEntry.objects.filter(pk__in=ids, active=True).update(active=False)
        if claimed != len(ids):  # someone settled this photo without holding its lock
            raise RuntimeError(f"ledger rows of photo {photo.pk} changed under us")
        for grant in take_back:
            entries.append(PointEntry(
                volunteer_id=grant.volunteer_id, photo_id=photo.pk, reason=grant.reason, points=-grant.points,
                earned_at=grant.earned_at, challenge_id=grant.challenge_id, vote_id=grant.vote_id,
                verification_id=grant.verification_id, actor_id=actor_id,
                active=False, reverses=grant, note=(note or "taken back")[:200], created_at=now,
            ))
    for (reason, vote_id), (points, who) in targets.items():
        if (reason, vote_id) in keep:
            continue
        entries.append(PointEntry(
            volunteer_id=photo.volunteer_id, photo_id=photo.pk, reason=reason, points=points, earned_at=now,
            challenge_id=challenge_id, vote_id=vote_id, actor_id=who if who is not None else actor_id,
            active=True, created_at=now,
        ))
    for verification_id, verifier_id in verify_targets.items():
        if verification_id in keep_verify:
            continue
        entries.append(PointEntry(
            volunteer_id=verifier_id, photo_id=photo.pk, reason=PointReason.VERIFY, points=settings.POINTS_VERIFY,
            earned_at=now, verification_id=verification_id, actor_id=actor_id, active=True, created_at=now,
        ))
    _ledger_write(entries)
    return len(entries)


def photo_points_settle(*, photo_id: int, now: dt.datetime | None = None, actor=None, note: str = "") -> int:
    """Lock one photo and settle its points (repairs, tests, admin)."""
    now = now or timezone.now()
    with transaction.atomic():
        photo = photo_lock(photo_id)
        if photo is None:
            return 0
        return photo_settle_locked(photo=photo, now=now, actor=actor, note=note)


def photo_points_revoke(*, photo_id: int, now: dt.datetime | None = None) -> int:
    """Take back every point a photo earned: it is about to be deleted (admin)."""
    now = now or timezone.now()
    with transaction.atomic():
        photo = photo_lock(photo_id)
        if photo is None:
            return 0
        return photo_settle_locked(photo=photo, now=now, note="photo deleted", revoke_all=True)


def bootstrap_points_take_back(*, user_id: int | None = None, now: dt.datetime | None = None) -> int:
    """Take back every point still held for photos of bootstrap accounts (one account, or all of them).

    Run when an account becomes one (collector's volunteer_became_bootstrap) and by every challenges_rotate,
    which repairs installations whose import accounts were marked by the migration. Each photo is
    settled under its row lock, in its own transaction; returns the ledger rows written (0: nothing held).
    """
    now = now or timezone.now()
    users = [user_id] if user_id is not None else collector_selectors.bootstrap_user_ids()
    if not users:
        return 0
    photo_ids = (PointEntry.objects.filter(volunteer_id__in=users, active=True, photo__isnull=False)
                 .order_by("photo_id").values_list("photo_id", flat=True).distinct())
    written = 0
    for photo_id in list(photo_ids):
        written += photo_points_settle(photo_id=photo_id, now=now, note="bootstrap import: no points")
    return written


def on_photo_status_changed(*, photo: Photo, old_status: str, new_status: str, old_label_id: int | None,
                            reviewer=None) -> None:
    """Receiver body for collector's photo_status_changed (inside the review transaction, photo locked)."""
    if new_status == PhotoStatus.REJECTED:
        note = "rejected after approval" if old_status == PhotoStatus.APPROVED else "rejected"
    elif new_status == PhotoStatus.WITHDRAWN:
        note = "withdrawn by the volunteer"
    elif old_label_id is not None and old_label_id != photo.label_id:
        note = "relabelled"
    else:
        note = ""
    photo_settle_locked(photo=photo, now=timezone.now(), actor=reviewer, note=note)
