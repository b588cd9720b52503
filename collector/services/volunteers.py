"""Volunteers: sign-up, the profile staff get on first upload, bootstrap accounts, account deletion and photo
withdrawal."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.authtoken.models import Token

from collector import storage
from collector.lib.names import display_name_key, reserved_name_keys
from collector.models import DISPLAY_NAME_KEY_MAX_LENGTH, Photo, PhotoStatus, Volunteer
from collector.password_validation import password_problems
from collector.signals import photo_status_changed, volunteer_became_bootstrap
from config.domain_errors import Conflict, Forbidden, Invalid

User = get_user_model()


_NAME_TAKEN = "That display name is taken."


def _name_key_reserved(key: str) -> bool:
    """A reserved word's key, or a staff account's username's key: staff usernames are held like volunteers'
    display names (an "аdmin" with a Cyrillic а would pass for the admin), whether or not staff have a volunteer
    profile. The refusal reads as for any taken name, so sign-up tells no one which accounts are staff."""
    if key in reserved_name_keys():
        return True
    staff = User.objects.filter(Q(is_staff=True) | Q(is_superuser=True)).values_list("username", flat=True)
    return any(display_name_key(username) == key for username in staff.iterator())


def volunteer_register(
    *,
    display_name: str,
    password: str | None = None,
    email: str = "",
    consent_training: bool,
    consent_public_credit: bool = False,
) -> tuple[Volunteer, Token]:
    """Create the account, its volunteer profile and its API token.

    ``password`` None or "" makes an account without a usable password (it
    signs in with its token only); any other password must pass the
    validators, which see the display name and email
    (collector.password_validation). The display name must differ from every
    other by its key (collector.lib.names), and from every staff username's
    key and the reserved names': the unique index on
    Volunteer.display_name_key settles two sign-ups racing for one name.
    """
    if not consent_training:
        raise Invalid("Consent to use the photos for training is required.",
                      fields={"consent_training": ["Must be true."]})
    if password:
        problems = password_problems(password, display_name=display_name, email=email)
        if problems:
            raise Invalid(problems[0], fields={"password": problems})
    key = display_name_key(display_name)
    if len(key) > DISPLAY_NAME_KEY_MAX_LENGTH:  # never for a name of 40 characters; guards other callers
        raise Invalid("That display name is too long.", fields={"display_name": ["Too long."]})
    with transaction.atomic():
        if (Volunteer.objects.filter(display_name_key=key).exists()
                or User.objects.filter(username__iexact=display_name).exists() or _name_key_reserved(key)):
            raise Invalid(_NAME_TAKEN, fields={"display_name": ["Already taken."]})
        try:
            with transaction.atomic():
                user = User.objects.create_user(username=display_name, email=email or "", password=password or None)
                if not password:
                    user.set_unusable_password()
                    user.save(update_fields=["password"])
                volunteer = Volunteer.objects.create(
                    user=user,
                    display_name=display_name,
                    consent_training=True,
                    consent_public_credit=consent_public_credit,
                )
        except IntegrityError:
            raise Invalid(_NAME_TAKEN, fields={"display_name": ["Already taken."]}) from None
        token = Token.objects.create(user=user)
    return volunteer, token


def volunteer_get_or_create_for_user(*, user) -> Volunteer:
    """Staff and operators who upload get a volunteer profile on first use.

    Its display name is the username, or, when a volunteer already has a name
    that looks the same, the username with "-<user id>" (then a random tail).
    """
    try:
        return user.volunteer
    except Volunteer.DoesNotExist:
        pass
    base = user.username[:40]
    for name in (base, f"{base[:40 - len(str(user.pk)) - 1]}-{user.pk}", f"staff-{user.pk}-{secrets.token_hex(4)}"):
        try:
            with transaction.atomic():
                volunteer, _ = Volunteer.objects.get_or_create(
                    user=user, defaults={"display_name": name, "consent_training": True})
            return volunteer
        except IntegrityError:  # the name (by its key) belongs to someone else
            continue
    raise Conflict("Could not find a free display name for this account.", code="display_name_taken")


def volunteer_delete(*, user) -> int:
    """Delete the account: photos leave every future dataset and their files leave storage.

    Returns the number of photos withdrawn. Deleting the user any other way
    (Django's user admin, a shell) does the same through the pre_delete
    receiver in collector.receivers, so no path leaves a deleted volunteer's photos
    in datasets or their files in storage.
    """
    with transaction.atomic():
        withdrawn = photos_withdraw_for_user(user=user)
        user.delete()
    return withdrawn


def volunteer_delete_own_account(*, user) -> int:
    """The account holder deletes their own account (the phone API's DELETE /me/); see volunteer_delete.

    Staff accounts are refused: a stolen or shared staff token must not be able
    to erase a reviewer or the last superuser. Another admin removes them.
    """
    if user.is_staff or user.is_superuser:
        raise Forbidden("Staff accounts are removed by another admin, not by the account itself.",
                        code="staff_account")
    return volunteer_delete(user=user)


def photos_withdraw_for_user(*, user, notify: bool = True) -> int:
    """Mark a volunteer's photos withdrawn and delete their files after the commit.

    Rows are kept, without files or owner, so that published dataset
    manifests still make sense; status ``withdrawn`` keeps them out of every
    future dataset. ``notify=False`` (used while the user row itself is being
    deleted) skips photo_status_changed: receivers would write rows pointing
    at a user that Django has already collected for deletion, and everything
    they keep per user is deleted with it anyway.
    """
    with transaction.atomic():
        photos = list(Photo.objects.select_for_update().filter(volunteer=user))
        if not photos:
            return 0
        keys = [key for photo in photos for key in photo.storage_keys]
        now = timezone.now()
        for photo in photos:
            old_status = photo.status
            photo.status = PhotoStatus.WITHDRAWN
            photo.withdrawn_at = now
            photo.save(update_fields=["status", "withdrawn_at", "updated_at"])
            if notify:
                photo_status_changed.send(
                    sender=Photo, photo=photo, old_status=old_status, new_status=photo.status,
                    old_label_id=photo.label_id, reviewer=None,
                )
        Photo.objects.filter(pk__in=[p.pk for p in photos]).update(
            volunteer=None, original_key="", training_key="", thumbnail_key="", idempotency_key=None
        )
        transaction.on_commit(lambda: storage.delete_quietly(keys))
    return len(photos)


def volunteer_mark_bootstrap(*, user) -> bool:
    """Make ``user``'s volunteer profile a bootstrap account (photos_import's): its photos train models but
    earn no points, so it never appears on a leaderboard. Returns True when it was not one before.

    Refuses (Conflict) an account a person signs in with to take part (Volunteer.takes_part): their
    points would go. Receivers of volunteer_became_bootstrap take back what the account had earned,
    in this transaction.
    """
    with transaction.atomic():
        volunteer = volunteer_get_or_create_for_user(user=user)
        volunteer = Volunteer.objects.select_for_update().select_related("user").get(pk=volunteer.pk)
        if volunteer.is_bootstrap:
            return False
        if volunteer.takes_part():
            raise Conflict(
                f"{volunteer.display_name} signs in as a volunteer. Imported photos earn no points, so they go to "
                "an account of their own: pass a new name with --create-volunteer.", code="takes_part",
            )
        volunteer.is_bootstrap = True
        volunteer.save(update_fields=["is_bootstrap"])
        volunteer_became_bootstrap.send(sender=Volunteer, user=volunteer.user)
    return True
