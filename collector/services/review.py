"""Review: approve, reject and relabel photos (with the audit trail), and the Reviewers group."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from collector.models import Label, Photo, PhotoReview, PhotoStatus, RejectionReason
from collector.signals import photo_status_changed
from config.domain_errors import Conflict, Forbidden, Invalid, NotFound

User = get_user_model()

_OWN_PHOTO = "Reviewers never review their own photos."
DECISIONS = ("approve", "reject", "relabel")


@dataclass
class ReviewResult:
    """What photo_decide did: the photo as it now stands, and whether this call changed it."""

    photo: Photo
    changed: bool


def review_input_check(*, decision: str, reason: str = "", label_slug: str | None = None) -> Label | None:
    """The rules every way of deciding shares (API, queue page, photo page, bulk actions), checked before any
    lock is taken: a known decision, a rejection needs a reason, a relabel needs a label, a label must exist.
    Returns the label named (None when none). Raises Invalid."""
    if decision not in DECISIONS:
        raise Invalid("decision must be approve, reject or relabel.",
                      fields={"decision": ["approve, reject or relabel"]})
    if decision == "reject" and reason not in RejectionReason.values:
        raise Invalid("A rejection needs a reason: " + ", ".join(RejectionReason.values) + ".",
                      fields={"reason": ["Required when rejecting."]})
    if decision == "relabel" and not label_slug:
        raise Invalid("A relabel needs the new label.", fields={"label": ["Pick the new label."]})
    return label_named(label_slug) if label_slug else None


def label_named(slug: str) -> Label:
    """The label with this slug, or Invalid naming the field `label` (review, relabel, a verifier's suggestion)."""
    label = Label.objects.filter(slug=slug).first()
    if label is None:
        raise Invalid(f"There is no label {slug!r}.", fields={"label": ["Unknown label."]})
    return label


def decision_already_taken(photo: Photo, *, decision: str, reason: str = "", label: Label | None = None) -> bool:
    """Does the photo already carry this decision? Then deciding again only adds a duplicate audit row.
    Call with the photo's row lock held, so the answer cannot change before the decision is written."""
    same_label = label is None or photo.label_id == label.pk
    if photo.disputed or photo.audit_flag:
        return False  # the crowd or the audit questioned it: a reviewer's decision settles it, even "approve"
    if decision == "approve":
        return photo.status == PhotoStatus.APPROVED and same_label
    if decision == "reject":
        return photo.status == PhotoStatus.REJECTED and photo.rejection_reason == reason and same_label
    return same_label


def photo_decide(*, photo_id: int, reviewer, decision: str, reason: str = "", label_slug: str | None = None,
                 note: str = "") -> ReviewResult:
    """Approve, reject (with a reason) or relabel one photo: the one way every caller decides.

    "Already decided?" and the decision happen under the photo's row lock, so a double click, a retried
    request, a bulk action racing a reviewer or two tabs record a decision once (``changed`` is False for
    the repeat). Raises Invalid, NotFound, Forbidden (own_photo) or Conflict (withdrawn)."""
    label = review_input_check(decision=decision, reason=reason, label_slug=label_slug)
    with transaction.atomic():
        photo = Photo.objects.lock_or_404(photo_id)
        if photo.status == PhotoStatus.WITHDRAWN:
            raise Conflict("This photo was withdrawn by its volunteer.", code="withdrawn")
        if photo.is_owned_by(reviewer):
            raise Forbidden(_OWN_PHOTO, code="own_photo")
        if decision_already_taken(photo, decision=decision, reason=reason, label=label):
            return ReviewResult(photo, changed=False)
        if decision == "relabel":
            _relabel_locked(photo=photo, reviewer=reviewer, label=label)
        else:
            status = PhotoStatus.APPROVED if decision == "approve" else PhotoStatus.REJECTED
            photo_decide_locked(photo=photo, reviewer=reviewer, decision=status, reason=reason, label=label,
                                note=note)
    return ReviewResult(photo, changed=True)


def photo_review(*, photo_id: int, reviewer, decision: str, reason: str = "", label_slug: str | None = None,
                 note: str = "") -> Photo:
    """Approve or reject one photo (optionally relabelling it), recording who and when."""
    if decision not in ("approve", "reject"):
        raise Invalid("decision must be approve or reject.", fields={"decision": ["approve or reject"]})
    return photo_decide(photo_id=photo_id, reviewer=reviewer, decision=decision, reason=reason,
                        label_slug=label_slug, note=note).photo


def photo_decide_locked(*, photo: Photo, reviewer, decision: str, reason: str, label: Label | None, note: str,
                        allow_own: bool = False, community: bool = False) -> None:
    """Record one decision. Assumes the caller holds the row lock (Photo.objects.lock_or_404) or just
    created the row (photo_create's auto-approval for imports, the one caller with allow_own).
    ``community``: the crowd's verdicts decided (collector.services.verification), not a staff reviewer."""
    if photo.status == PhotoStatus.WITHDRAWN:
        raise Conflict("This photo was withdrawn by its volunteer.", code="withdrawn")
    if not allow_own and photo.is_owned_by(reviewer):
        raise Forbidden(_OWN_PHOTO, code="own_photo")
    old_status, old_label_id = photo.status, photo.label_id
    now = timezone.now()
    photo.status = decision
    photo.reviewed_by = reviewer
    photo.reviewed_at = now
    photo.rejection_reason = reason if decision == PhotoStatus.REJECTED else ""
    photo.review_note = note[:500]
    if label is not None:
        photo.label = label
    if decision == PhotoStatus.APPROVED and old_status != PhotoStatus.APPROVED:
        photo.approved_at = now
    elif decision != PhotoStatus.APPROVED:
        photo.approved_at = None
    if not community:
        photo.disputed = False  # a staff decision settles a dispute and any audit flag
        if photo.audit_flag:
            photo.audit_outcome = ("rejected" if decision == PhotoStatus.REJECTED
                                   else "relabelled" if photo.label_id != old_label_id else "kept")
        photo.audit_flag = ""
    photo.save()
    PhotoReview.objects.create(
        photo=photo, reviewer=reviewer, decision=decision, reason=photo.rejection_reason, note=photo.review_note,
        label_before_id=old_label_id, label_after_id=photo.label_id, by_community=community,
    )
    if old_status != decision or old_label_id != photo.label_id:
        photo_status_changed.send(
            sender=Photo, photo=photo, old_status=old_status, new_status=decision, old_label_id=old_label_id,
            reviewer=reviewer,
        )


def _relabel_locked(*, photo: Photo, reviewer, label: Label) -> None:
    old_label_id = photo.label_id
    photo.label = label
    photo.disputed = False  # a reviewer settled what the crowd or the audit questioned
    if photo.audit_flag:
        photo.audit_outcome = "relabelled" if label.pk != old_label_id else "kept"
    photo.audit_flag = ""
    photo.save(update_fields=["label", "disputed", "audit_flag", "audit_outcome", "updated_at"])
    PhotoReview.objects.create(photo=photo, reviewer=reviewer, decision=photo.status, note="relabel",
                               label_before_id=old_label_id, label_after_id=label.pk)
    photo_status_changed.send(sender=Photo, photo=photo, old_status=photo.status, new_status=photo.status,
                              old_label_id=old_label_id, reviewer=reviewer)


def photo_relabel(*, photo_id: int, reviewer, label_slug: str) -> Photo:
    """Change the label and keep the status (pending stays pending, approved stays approved)."""
    return photo_decide(photo_id=photo_id, reviewer=reviewer, decision="relabel", label_slug=label_slug).photo


REVIEWERS_GROUP = "Reviewers"
# What a reviewer needs in the admin: decide on photos, see labels, volunteers and the audit trail.
REVIEWER_PERMISSIONS = (
    "collector.review_photo",
    "collector.view_photo",
    "collector.change_photo",
    "collector.view_photoreview",
    "collector.view_label",
    "collector.view_volunteer",
)


def reviewer_account_create(*, username: str, password: str, email: str = ""):
    """A new staff account for a reviewer (reviewers_group_sync then puts it in the group).

    The name passes Django's username rules and is free in any letter case (as a
    volunteer's is); the password passes AUTH_PASSWORD_VALIDATORS. Raises Invalid.
    """
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    try:
        User.username_validator(username)
    except ValidationError as exc:
        raise Invalid(f"{username!r} cannot be a user name: {' '.join(exc.messages)}",
                      fields={"username": exc.messages}) from None
    if User.objects.filter(username__iexact=username).exists():
        raise Invalid(f"The user name {username!r} is taken.", fields={"username": ["Already taken."]})
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise Invalid(f"The password for {username} is refused: {' '.join(exc.messages)}",
                      fields={"password": exc.messages}) from None
    return User.objects.create_user(username=username, email=email, password=password, is_staff=True)


def reviewers_group_sync(*, add_usernames: list[str] = (), remove_usernames: list[str] = ()):
    """Create the Reviewers group (or put missing permissions back) and add or remove members.

    Members become staff (the admin needs it). Unknown usernames raise
    NotFound (``fields["usernames"]`` lists them) before anything changes.
    """
    from django.contrib.auth.models import Group, Permission

    wanted = set(add_usernames) | set(remove_usernames)
    users = {u.username: u for u in User.objects.filter(username__in=wanted)}
    missing = sorted(wanted - users.keys())
    if missing:
        raise NotFound("No such user: " + ", ".join(missing), code="no_such_user", fields={"usernames": missing})
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=REVIEWERS_GROUP)
        perms = []
        for dotted in REVIEWER_PERMISSIONS:
            app_label, codename = dotted.split(".")
            perms.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.add(*perms)  # add, never strip what an admin granted on purpose
        for name in add_usernames:
            user = users[name]
            if not user.is_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
            user.groups.add(group)
        for name in remove_usernames:
            users[name].groups.remove(group)
    return group


def photos_flag_likely_mislabeled(*, flags: list[tuple[int, float, str, float]], limit: int) -> list[int]:
    """Send approved photos back to the review queue as likely mislabelled: ``flags`` is [(photo id, score,
    suggested label slug, its probability)], most likely first. Each is flagged under its row lock, only while
    it is still approved and never flagged before (a reviewer's verdict on a flag stands); at most ``limit``.
    Flagged photos stay out of datasets and the novelty bonus until a reviewer decides (photos_approved).
    Returns the ids flagged."""
    from collector.selectors import AUDIT_FLAG

    slugs = {slug for _, _, slug, _ in flags}
    labels = {label.slug: label for label in Label.objects.filter(slug__in=slugs)}
    flagged = []
    for photo_id, score, slug, confidence in flags:
        if len(flagged) >= limit:
            break
        with transaction.atomic():
            photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
            if (photo is None or photo.status != PhotoStatus.APPROVED or photo.audit_flag or photo.audit_outcome
                    or labels.get(slug) is None or labels[slug].pk == photo.label_id):
                continue
            photo.audit_flag = AUDIT_FLAG
            photo.audit_score = round(float(score), 4)
            photo.audit_suggested_label = labels[slug]
            photo.audit_suggested_confidence = round(float(confidence), 4)
            photo.save(update_fields=["audit_flag", "audit_score", "audit_suggested_label",
                                      "audit_suggested_confidence", "updated_at"])
            flagged.append(photo_id)
    return flagged
