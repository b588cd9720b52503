"""Reads of the collector app. Other apps read photos and labels only through here."""

from __future__ import annotations

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from collector.models import Label, Photo, PhotoPrediction, PhotoStatus, Volunteer
from collector.signals import labels_ranking
from collector.models import photo_thumbnail_url  # noqa: F401  (the one thumbnail URL rule, for other apps)
from collector.models import volunteer_is  # noqa: F401  (the one "who took this photo" rule, for other apps)


REVIEW_PERMISSION = "collector.review_photo"
AUDIT_FLAG = "likely_mislabeled"  # Photo.audit_flag of a photo the nightly label audit sent back
BATCH_NOTE_PREFIX = "batch: the model agreed"  # the audit note of photos approved in one go from the queue


def user_is_reviewer(user) -> bool:
    """The one meaning of "reviewer": an active account holding ``collector.review_photo`` (the Reviewers
    group gives it; superusers hold it). The API, the queue page, the photo page and the admin actions all
    ask this; the admin pages also need staff status, which Django's admin asks of every page anyway."""
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_active
                and user.has_perm(REVIEW_PERMISSION))


def review_queue(*, user, label: Label | None = None, challenge_id: int | None = None,
                 near_duplicate: bool | None = None, exclude_ids=(), model_disagrees_first: bool = False,
                 flag: str = "") -> QuerySet[Photo]:
    """What a reviewer decides on: pending photos, none of their own; disputed photos (the crowd could not
    agree) first, then oldest first (first come, first decided). ``model_disagrees_first``: photos whose
    model guess is another label come right after the disputed ones. ``flag="likely_mislabeled"``: instead,
    the approved photos the nightly label audit sent back, most likely mislabelled first."""
    if flag == AUDIT_FLAG:
        qs = Photo.objects.filter(status=PhotoStatus.APPROVED, audit_flag=AUDIT_FLAG).exclude(volunteer=user)
        if label is not None:
            qs = qs.filter(label=label)
        return qs.order_by(F("audit_score").desc(nulls_last=True), "created_at", "id")
    qs = Photo.objects.filter(status=PhotoStatus.PENDING).exclude(volunteer=user)
    if label is not None:
        qs = qs.filter(label=label)
    if challenge_id is not None:
        qs = qs.filter(challenge_id=challenge_id)
    if near_duplicate is not None:
        qs = qs.filter(near_duplicate_of__isnull=not near_duplicate)
    if exclude_ids:
        qs = qs.exclude(pk__in=list(exclude_ids))
    if model_disagrees_first:
        disagrees = Exists(PhotoPrediction.objects.filter(photo=OuterRef("pk"), for_review=True)
                           .exclude(label=OuterRef("label__slug")))
        return qs.annotate(model_disagrees=disagrees).order_by("-disputed", "-model_disagrees", "created_at", "id")
    return qs.order_by("-disputed", "created_at", "id")


def label_list_active() -> QuerySet[Label]:
    return Label.objects.filter(active=True).annotate(
        approved_count=Count("photos", filter=Q(photos__status=PhotoStatus.APPROVED))
    ).order_by("slug")


def volunteer_is_bootstrap(*, user_id: int) -> bool:
    """Whether the account is photos_import's bootstrap account (its photos earn no points)."""
    return Volunteer.objects.filter(user_id=user_id, is_bootstrap=True).exists()


def bootstrap_user_ids() -> list[int]:
    """User ids of every bootstrap account (a handful at most: one per imported set)."""
    return list(Volunteer.objects.filter(is_bootstrap=True).values_list("user_id", flat=True))


def labels_created_since(*, since) -> bool:
    """Whether an active label was created at or after ``since`` (challenges: a day's first labels)."""
    return Label.objects.filter(active=True, created_at__gte=since).exists()


def photo_list_for_user(*, user, status: str | None = None) -> QuerySet[Photo]:
    qs = Photo.objects.filter(volunteer=user).select_related("label")
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def photo_get_for_user(*, user, photo_id: int) -> Photo | None:
    return Photo.objects.filter(volunteer=user, pk=photo_id).select_related("label").first()


def photo_is_public(photo: Photo) -> bool:
    """Approved photos of volunteers who agreed to public credit may be shown to anyone."""
    if photo.status != PhotoStatus.APPROVED or photo.volunteer_id is None:
        return False
    return Volunteer.objects.filter(user_id=photo.volunteer_id, consent_public_credit=True).exists()


def photo_can_view(*, user, photo: Photo) -> bool:
    if user.is_authenticated and (photo.is_owned_by(user) or user_is_reviewer(user)):
        return True
    if photo_is_public(photo):
        return True
    return _verifier_may_see(user, photo)


def _verifier_may_see(user, photo: Photo) -> bool:
    """Community verifiers see what they may be shown: pending photos, and the staff-decided photos that serve
    as gold (approved, or rejected as the wrong label; never a photo rejected as inappropriate)."""
    if photo.status != PhotoStatus.PENDING and gold_expected(photo) is None:
        return False
    return verifier_is_eligible(user)


def photo_counts_for_user(*, user) -> dict[str, int]:
    rows = Photo.objects.filter(volunteer=user).values("status").annotate(n=Count("id"))
    counts = {s: 0 for s in (PhotoStatus.PENDING, PhotoStatus.APPROVED, PhotoStatus.REJECTED)}
    for row in rows:
        if row["status"] in counts:
            counts[row["status"]] = row["n"]
    return counts


def photos_approved(*, up_to=None) -> QuerySet[Photo]:
    """Approved photos (never rejected, pending or withdrawn), optionally up to an approval cutoff."""
    # A photo the label audit sent back stays out until a reviewer decides it.
    qs = Photo.objects.filter(status=PhotoStatus.APPROVED, audit_flag="").exclude(training_key="")
    if up_to is not None:
        qs = qs.filter(approved_at__lte=up_to)
    return qs.select_related("label")


def photo_locked(photo_id: int, *, required: bool = False) -> Photo | None:
    """The photo's row, locked until the caller's transaction ends (select_for_update; call inside
    ``transaction.atomic()``). A missing photo is None, or the domain NotFound when ``required``.

    Every change to a photo (review, relabel, votes, features, points) takes this lock first, so two
    changes to one photo never interleave."""
    return Photo.objects.lock_or_404(photo_id) if required else Photo.objects.select_for_update().filter(
        pk=photo_id).first()


def label_get(*, slug: str) -> Label | None:
    return Label.objects.filter(slug=slug).first()


def verdicts_counted(*, photo_id: int) -> list[tuple[int, int, str, int | None, int]]:
    """(verification id, verifier id, verdict, suggested label id, shown label id) of a photo's community
    verdicts that are not gold (gold verdicts judge the verifier, not the photo)."""
    from collector.models import Verification

    return list(Verification.objects.filter(photo_id=photo_id, gold=False)
                .values_list("id", "verifier_id", "verdict", "label_id", "shown_label_id"))


def volunteers_by_user(*, user_ids) -> dict[int, Volunteer]:
    """user id -> Volunteer, for the given users that have one."""
    return {v.user_id: v for v in Volunteer.objects.filter(user_id__in=list(user_ids))}


def volunteer_profile(*, user_id: int) -> tuple[int | None, str | None, bool | None]:
    """(volunteer id, display name, consent to public credit) of a user, or three Nones without a volunteer."""
    row = Volunteer.objects.filter(user_id=user_id).values_list("id", "display_name", "consent_public_credit").first()
    return row or (None, None, None)


def volunteer_for_user(user) -> Volunteer | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Volunteer.objects.filter(user=user).first()


def photos_public(*, approved_since=None, approved_until=None, ids=None) -> QuerySet[Photo]:
    """Approved photos of volunteers who consented to public credit (the newsletter's and galleries' pool),
    annotated with ``credit_name`` (the volunteer's display name)."""
    from django.db.models import F

    qs = Photo.objects.filter(
        status=PhotoStatus.APPROVED, volunteer__volunteer__consent_public_credit=True
    ).exclude(thumbnail_key="")
    if approved_since is not None:
        qs = qs.filter(approved_at__gte=approved_since)
    if approved_until is not None:
        qs = qs.filter(approved_at__lt=approved_until)
    if ids is not None:
        qs = qs.filter(pk__in=list(ids))
    return qs.select_related("label").annotate(credit_name=F("volunteer__volunteer__display_name"))


def volunteer_public_names(*, user_ids) -> dict[int, str]:
    """user id -> the name public pages may show right now (display name only with consent)."""
    return {user_id: v.public_name for user_id, v in volunteers_by_user(user_ids=user_ids).items()}


def verifier_is_eligible(user) -> bool:
    """Whether ``user`` may verify: community review is on and they have enough approved photos of their own."""
    from django.conf import settings

    if not settings.COMMUNITY_REVIEW or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    approved = Photo.objects.filter(volunteer=user, status=PhotoStatus.APPROVED).count()
    return approved >= settings.COMMUNITY_REVIEW_MIN_APPROVED


def gold_expected(photo: Photo) -> str | None:
    """The verdict a gold-standard photo calls for, or None when it cannot be gold: staff approved it
    (agree with its label) or rejected it as the wrong label (disagree)."""
    from collector.models import RejectionReason, Verdict

    if photo.status == PhotoStatus.APPROVED:
        return Verdict.AGREE
    if photo.status == PhotoStatus.REJECTED and photo.rejection_reason == RejectionReason.WRONG_LABEL:
        return Verdict.DISAGREE
    return None


def photos_needing_prediction(*, model_version: int, published_at, limit: int) -> list[tuple[int, str]]:
    """(id, training key) of at most ``limit`` photos the model ``model_version`` (published at
    ``published_at``) should predict, oldest first within each kind: first the pending or approved photos
    uploaded since it was published that have no prediction at upload yet (the stumped bonus waits for
    those), then the pending photos whose review guess is not this version's."""
    stored = Photo.objects.exclude(training_key="").order_by("created_at", "id")
    todo = []
    if published_at is not None:
        at_upload = PhotoPrediction.objects.filter(at_upload=True).values("photo_id")
        todo = list(stored.filter(created_at__gte=published_at, status__in=[PhotoStatus.PENDING, PhotoStatus.APPROVED])
                    .exclude(pk__in=at_upload).values_list("pk", "training_key")[:limit])
    guessed = PhotoPrediction.objects.filter(for_review=True, model_version=model_version).values("photo_id")
    seen = {pk for pk, _ in todo}
    pending = stored.filter(status=PhotoStatus.PENDING).exclude(pk__in=guessed).values_list("pk", "training_key")
    todo += [(pk, key) for pk, key in pending[:limit] if pk not in seen]  # at most len(seen) of them are seen
    return todo[:limit]


def review_queue_model_agrees(*, user, threshold: float, label: Label | None = None) -> QuerySet[Photo]:
    """The reviewer's queue narrowed to photos whose model guess is their label at ``threshold`` or more."""
    return review_queue(user=user, label=label).filter(
        predictions__for_review=True, predictions__label=F("label__slug"), predictions__confidence__gte=threshold)


def model_agreement_error_rate(*, threshold: float) -> tuple[int, int]:
    """(decided, wrong): of the photos a staff reviewer decided after the model agreed with their label at
    ``threshold`` or more, how many were rejected or moved to another label. The measured error rate a
    reviewer sees before approving such photos in one go."""
    agreed = PhotoPrediction.objects.filter(for_review=True, confidence__gte=threshold, label=F("photo_label__slug"),
                                            photo__reviewed_by__isnull=False,
                                            photo__status__in=[PhotoStatus.APPROVED, PhotoStatus.REJECTED])
    agreed = agreed.exclude(photo__reviews__note__startswith=BATCH_NOTE_PREFIX)  # the measure must not feed on itself
    decided = agreed.count()
    wrong = agreed.filter(Q(photo__status=PhotoStatus.REJECTED) | ~Q(photo__label_id=F("photo_label_id"))).count()
    return decided, wrong


def review_guesses(*, photo_ids) -> dict[int, PhotoPrediction]:
    """photo id -> the model's guess the review queue shows (PhotoPrediction.for_review), for those that have one."""
    return {p.photo_id: p for p in PhotoPrediction.objects.filter(photo_id__in=list(photo_ids), for_review=True)}


def photo_server_prediction(*, photo_id: int) -> PhotoPrediction | None:
    """The server's own prediction for the photo at its upload (PhotoPrediction.at_upload: what the stumped
    bonus goes by), or None."""
    return PhotoPrediction.objects.filter(photo_id=photo_id, at_upload=True).first()


def photo_server_predictions(*, photo_ids) -> dict[int, PhotoPrediction]:
    """photo id -> the server's own prediction at upload, for the photos that have one."""
    return {p.photo_id: p for p in PhotoPrediction.objects.filter(photo_id__in=list(photo_ids), at_upload=True)}


def label_list_ranked() -> list[Label]:
    """Active labels, most needed first (GET /api/v1/labels/, the camera page): each with approved_count and
    need_rank, recall, confused_with, hint, as collector.signals.labels_ranking's receiver says."""
    labels = list(label_list_active())
    ranking = next((answer for _, answer in labels_ranking.send(sender=Label, labels=labels) if answer), None) or {}
    for position, label in enumerate(labels, start=1):
        need = ranking.get(label.slug) or {}
        label.need_rank = need.get("rank", position)
        label.recall = need.get("recall")
        label.confused_with = need.get("confused_with")
        label.hint = need.get("hint", "")
    return sorted(labels, key=lambda label: label.need_rank)
