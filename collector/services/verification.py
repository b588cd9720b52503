"""Community verification: volunteers judge other volunteers' pending photos, blind; enough agreement approves.

The rules (docs/review.md, "The crowd verifies"):

* Verifiers are volunteers with at least COMMUNITY_REVIEW_MIN_APPROVED approved photos of their own
  (``verifier_is_eligible``); COMMUNITY_REVIEW=false switches verification off.
* Each verdict is agree, disagree (optionally with the right label) or unsure, once per photo and verifier,
  never on one's own photo. Nobody is shown anyone else's verdicts.
* About one item in COMMUNITY_REVIEW_GOLD_EVERY is a gold-standard photo (staff decided it already). Gold
  verdicts measure the verifier and decide nothing; a verifier whose gold agreement falls below
  COMMUNITY_REVIEW_GOLD_AGREEMENT after COMMUNITY_REVIEW_GOLD_MIN gold verdicts stops counting until it
  recovers (``verifier_in_good_standing``).
* A pending photo with at least COMMUNITY_REVIEW_MIN_VOTES counted agree/disagree verdicts, of which more
  than COMMUNITY_REVIEW_AGREEMENT agree, is approved by the community (a PhotoReview row with
  ``by_community``; the verdicts are its Verification rows). Otherwise, once that many have come, it is
  marked disputed (staff see it first) with the label the crowd suggests. The crowd never rejects.
* Staff decisions always win: a photo staff decided takes no more (non-gold) verdicts, and a staff decision
  on a community-approved photo replaces it like any later decision.

Every verdict is written with the photo's row lock held (Photo.objects.lock_or_404), and the tally is read
under it, so two verdicts arriving at once are counted one after the other: never a lost verdict, never two
approvals.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q

from collector.selectors import gold_expected, verifier_is_eligible
from collector.models import Label, Photo, PhotoReview, PhotoStatus, RejectionReason, Verdict, Verification
from collector.services.review import label_named, photo_decide_locked
from collector.signals import photo_status_changed
from config.domain_errors import Conflict, Forbidden, Invalid, NotFound

GOLD_SERVED_SECONDS = 6 * 3600  # how long a served gold item may still be answered


def _gold_key(user_id: int, photo_id: int) -> str:
    return f"crowdlens:verify-gold:{user_id}:{photo_id}"


def _require_eligible(user) -> None:
    if not settings.COMMUNITY_REVIEW:
        raise Forbidden("Community verification is switched off here.", code="not_eligible")
    if not verifier_is_eligible(user):
        raise Forbidden(f"Verifying opens after {settings.COMMUNITY_REVIEW_MIN_APPROVED} of your own photos "
                        "have been approved.", code="not_eligible")


@dataclass
class GoldAgreement:
    gold: int
    agreed: int

    @property
    def share(self) -> float | None:
        return self.agreed / self.gold if self.gold else None

    @property
    def counts(self) -> bool:
        """In good standing: too few gold verdicts to judge yet, or agreeing often enough."""
        return self.gold < settings.COMMUNITY_REVIEW_GOLD_MIN or self.share >= settings.COMMUNITY_REVIEW_GOLD_AGREEMENT


def verifier_gold_agreement(*, user_id: int) -> GoldAgreement:
    """How often the verifier's gold verdicts (unsure left out) matched the staff decision, as it stands now."""
    rows = Verification.objects.filter(verifier_id=user_id, gold=True).exclude(verdict=Verdict.UNSURE).aggregate(
        gold=Count("id"),
        agreed=Count("id", filter=(
            Q(verdict=Verdict.AGREE, photo__status=PhotoStatus.APPROVED)
            & Q(photo__label_id=F("shown_label_id")))
            | Q(verdict=Verdict.DISAGREE, photo__status=PhotoStatus.REJECTED)
            | (Q(verdict=Verdict.DISAGREE, photo__status=PhotoStatus.APPROVED)
               & ~Q(photo__label_id=F("shown_label_id")))),
    )
    return GoldAgreement(gold=rows["gold"], agreed=rows["agreed"])


def verifier_in_good_standing(*, user_id: int) -> bool:
    return verifier_gold_agreement(user_id=user_id).counts


@dataclass
class VerificationItem:
    photo: Photo
    label: Label


def verification_next(*, user) -> VerificationItem:
    """The next photo for ``user`` to judge: a pending photo that is not theirs, not disputed and not judged
    by them (the ones closest to a decision first, then oldest), or now and then a gold-standard photo.
    Raises Forbidden (not_eligible) or NotFound (nothing_to_verify)."""
    _require_eligible(user)
    done = Verification.objects.filter(verifier=user).values("photo_id")
    pending = (Photo.objects.filter(status=PhotoStatus.PENDING, disputed=False).exclude(volunteer=user)
               .exclude(volunteer__isnull=True).exclude(pk__in=done).exclude(thumbnail_key=""))
    judged = Verification.objects.filter(verifier=user).count()
    if (judged + 1) % settings.COMMUNITY_REVIEW_GOLD_EVERY == 0 and pending.exists():
        # Staff-decided photos (never community-approved ones): a random one of the latest few hundred, so
        # gold cannot be told apart by age and the query stays an index range however large the table.
        candidates = list(
            Photo.objects.filter(reviewed_by__isnull=False)
            .filter(Q(status=PhotoStatus.APPROVED)
                    | Q(status=PhotoStatus.REJECTED, rejection_reason=RejectionReason.WRONG_LABEL))
            .exclude(volunteer=user).exclude(pk__in=done).exclude(thumbnail_key="")
            .exclude(reviews__by_community=True).order_by("-reviewed_at").values_list("pk", flat=True)[:300])
        gold = (Photo.objects.select_related("label").get(pk=random.choice(candidates)) if candidates else None)
        if gold is not None:
            cache.set(_gold_key(user.pk, gold.pk), True, GOLD_SERVED_SECONDS)
            return VerificationItem(photo=gold, label=gold.label)
    photo = (pending.annotate(verdicts=Count("verifications")).select_related("label")
             .order_by("-verdicts", "created_at", "id").first())
    if photo is None:
        raise NotFound("Nothing to verify right now: every photo waiting has been judged by you or is yours.",
                       code="nothing_to_verify")
    return VerificationItem(photo=photo, label=photo.label)


@dataclass
class VerificationResult:
    verification: Verification
    decided: bool  # this verdict completed a community approval
    disputed: bool  # this verdict sent the photo to staff as disputed


def verification_submit(*, user, photo_id: int, verdict: str, label_slug: str | None = None) -> VerificationResult:
    """Record one verdict and, with the photo's row lock held, decide the photo when the crowd agrees.

    Raises Invalid, NotFound, Forbidden (not_eligible, own_photo) or Conflict (already_verified,
    already_decided: staff decided the photo meanwhile)."""
    if verdict not in Verdict.values:
        raise Invalid("verdict must be agree, disagree or unsure.", fields={"verdict": ["agree, disagree or unsure"]})
    label = label_named(label_slug) if label_slug else None
    _require_eligible(user)
    counts = verifier_in_good_standing(user_id=user.pk)
    with transaction.atomic():
        photo = Photo.objects.lock_or_404(photo_id)
        if photo.is_owned_by(user):
            raise Forbidden("Nobody verifies their own photos.", code="own_photo")
        if photo.status == PhotoStatus.WITHDRAWN:
            raise NotFound("Not found.")
        if Verification.objects.filter(photo=photo, verifier=user).exists():
            raise Conflict("You have already judged this photo.", code="already_verified")
        # A verdict that arrives just after the crowd approved the photo (it was pending when it was shown)
        # is kept and can earn its points; once staff decided, a photo takes no more verdicts except as gold.
        late = photo.status == PhotoStatus.APPROVED and photo.reviewed_by_id is None and \
            PhotoReview.objects.filter(photo=photo).order_by("-id").values_list("by_community", flat=True).first()
        gold = photo.status != PhotoStatus.PENDING and not late
        if gold and not (cache.get(_gold_key(user.pk, photo.pk)) and gold_expected(photo)):
            raise Conflict("This photo was decided meanwhile and takes no more verdicts.", code="already_decided")
        if verdict == Verdict.AGREE and label is not None and label.pk != photo.label_id:
            raise Invalid("An agree verdict is about the label shown.", fields={"label": ["Not the label shown."]})
        try:
            with transaction.atomic():
                verification = Verification.objects.create(
                    photo=photo, verifier=user, verdict=verdict, shown_label_id=photo.label_id,
                    label=label if verdict == Verdict.DISAGREE else None, gold=gold, counted=counts and not gold)
        except IntegrityError:  # the unique constraint: the same verdict sent twice at once
            raise Conflict("You have already judged this photo.", code="already_verified") from None
        if gold:
            cache.delete(_gold_key(user.pk, photo.pk))
            return VerificationResult(verification, decided=False, disputed=False)
        if late:  # the decision stands; the ledger settles the photo again (this verdict may earn its point)
            photo_status_changed.send(sender=Photo, photo=photo, old_status=photo.status, new_status=photo.status,
                                      old_label_id=photo.label_id, reviewer=None)
            return VerificationResult(verification, decided=False, disputed=False)
        decided, disputed = _tally_locked(photo)
    return VerificationResult(verification, decided=decided, disputed=disputed)


def _tally_locked(photo: Photo) -> tuple[bool, bool]:
    """Count the photo's verdicts (the row lock is held) and approve it or mark it disputed."""
    if photo.disputed or photo.status != PhotoStatus.PENDING:
        return False, False
    verdicts = list(Verification.objects.filter(photo=photo, gold=False)
                    .exclude(verdict=Verdict.UNSURE).values_list("verifier_id", "verdict", "label_id"))
    standing = {uid: verifier_in_good_standing(user_id=uid) for uid in {v[0] for v in verdicts}}
    counted = [v for v in verdicts if standing[v[0]]]
    if len(counted) < settings.COMMUNITY_REVIEW_MIN_VOTES:
        return False, False
    agree = sum(1 for v in counted if v[1] == Verdict.AGREE)
    if agree / len(counted) > settings.COMMUNITY_REVIEW_AGREEMENT:
        note = f"community: {agree} of {len(counted)} counted verdicts agree"
        photo_decide_locked(photo=photo, reviewer=None, decision=PhotoStatus.APPROVED, reason="", label=None,
                            note=note, community=True)
        return True, False
    suggested = Counter(v[2] for v in counted if v[1] == Verdict.DISAGREE and v[2] is not None).most_common(1)
    photo.disputed = True
    photo.crowd_label_id = suggested[0][0] if suggested else None
    photo.save(update_fields=["disputed", "crowd_label", "updated_at"])
    return False, True


def community_decisions(*, photo_id: int) -> list[PhotoReview]:
    """The community's decisions on a photo (for the admin and tests)."""
    return list(PhotoReview.objects.filter(photo_id=photo_id, by_community=True))
