"""Volunteers: sign-up, the profile staff get on first upload, bootstrap accounts, account deletion and photo
withdrawal."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from collector import storage
from collector.models import Photo, PhotoStatus, Volunteer
from collector.signals import photo_status_changed, volunteer_became_bootstrap
from config.domain_errors import Conflict, Invalid

User = get_user_model()


def volunteer_register(
    *,
    display_name: str,
    password: str | None = None,
    email: str = "",
    consent_training: bool,
    consent_public_credit: bool = False,
) -> tuple[Volunteer, Token]:
    if not consent_training:
        raise Invalid("Consent to use the photos for training is required.",
                      fields={"consent_training": ["Must be true."]})
    with transaction.atomic():
        if User.objects.filter(username__iexact=display_name).exists():
            raise Invalid("That display name is taken.", fields={"display_name": ["Already taken."]})
        try:
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
            raise Invalid("That display name is taken.", fields={"display_name": ["Already taken."]}) from None
        token = Token.objects.create(user=user)
    return volunteer, token


def volunteer_get_or_create_for_user(*, user) -> Volunteer:
    """Staff and operators who upload get a volunteer profile on first use."""
    try:
        return user.volunteer
    except Volunteer.DoesNotExist:
        volunteer, _ = Volunteer.objects.get_or_create(
            user=user, defaults={"display_name": user.username[:40], "consent_training": True}
        )
        return volunteer


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
