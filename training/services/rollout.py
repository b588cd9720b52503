"""Staged rollout: a published version in service for a percentage of devices, widened, halted, completed or
rolled back from the admin. ``training.selectors.model_for_device`` answers each phone; the history of every
change is kept in RolloutChange (who, when, from which percentage to which).
"""

from __future__ import annotations

from django.db import transaction

from config.domain_errors import Conflict, Invalid, NotFound
from training.models import ModelVersion, Rollout, RolloutChange, RolloutState, VersionStatus
from training.services.publishing import model_version_put_in_service


def _check_percent(percent: int) -> int:
    if not isinstance(percent, int) or isinstance(percent, bool) or not 1 <= percent <= 100:
        raise Invalid("The percentage must be a whole number from 1 to 100.", code="invalid_percent",
                      fields={"percent": "A whole number from 1 to 100."})
    return percent


def _open_rollout_locked() -> Rollout:
    rollout = Rollout.objects.select_for_update().filter(open=True).select_related("model_version").first()
    if rollout is None:
        raise NotFound("No staged rollout is under way.", code="no_rollout")
    return rollout


def _record(rollout: Rollout, *, action: str, percent_from: int | None, user) -> None:
    RolloutChange.objects.create(rollout=rollout, action=action, percent_from=percent_from,
                                 percent_to=rollout.percent, state=rollout.state, changed_by=user)


def rollout_start(*, version: int, percent: int, user=None) -> Rollout:
    """Serve published ``version`` to ``percent`` % of devices (by install id); the rest keep the version in service."""
    _check_percent(percent)
    with transaction.atomic():
        target = ModelVersion.objects.select_for_update().filter(version=version).first()
        if target is None or target.status != VersionStatus.PUBLISHED:
            raise NotFound(f"There is no published model version {version}.")
        current = ModelVersion.objects.filter(in_service=True).first()
        if current is None:
            raise Conflict("No model is in service for the other devices; put a version in service first.",
                           code="no_model_in_service")
        if current.pk == target.pk:
            raise Conflict(f"v{version} is already in service for every device.", code="already_in_service")
        existing = Rollout.objects.select_for_update().filter(open=True).select_related("model_version").first()
        if existing is not None:
            raise Conflict(f"{existing.model_version} is already rolling out ({existing.get_state_display().lower()}, "
                           f"{existing.percent} %); complete it or roll it back first.", code="rollout_open")
        if percent == 100:
            model_version_put_in_service(version=version, user=user)
            rollout = Rollout.objects.create(model_version=target, percent=100, state=RolloutState.COMPLETE,
                                             open=None, started_by=user)
        else:
            rollout = Rollout.objects.create(model_version=target, percent=percent, started_by=user)
        _record(rollout, action="start", percent_from=None, user=user)
    return rollout


def rollout_set_percent(*, percent: int, user=None) -> Rollout:
    """Widen or narrow the open rollout (a halted one resumes); 100 % completes it."""
    _check_percent(percent)
    if percent == 100:
        return rollout_complete(user=user)
    with transaction.atomic():
        rollout = _open_rollout_locked()
        before, was = rollout.percent, rollout.state
        rollout.percent, rollout.state = percent, RolloutState.ACTIVE
        rollout.save(update_fields=["percent", "state", "updated_at"])
        action = "resume" if was == RolloutState.HALTED else "widen" if percent >= before else "narrow"
        _record(rollout, action=action, percent_from=before, user=user)
    return rollout


def rollout_halt(*, user=None) -> Rollout:
    """Every device gets the version in service again; the percentage is kept for a resume."""
    with transaction.atomic():
        rollout = _open_rollout_locked()
        if rollout.state == RolloutState.HALTED:
            return rollout
        rollout.state = RolloutState.HALTED
        rollout.save(update_fields=["state", "updated_at"])
        _record(rollout, action="halt", percent_from=rollout.percent, user=user)
    return rollout


def rollout_complete(*, user=None) -> Rollout:
    """Put the rollout's version in service for every device."""
    with transaction.atomic():
        rollout = _open_rollout_locked()
        before = rollout.percent
        rollout.percent, rollout.state, rollout.open = 100, RolloutState.COMPLETE, None
        rollout.save(update_fields=["percent", "state", "open", "updated_at"])
        _record(rollout, action="complete", percent_from=before, user=user)
        model_version_put_in_service(version=rollout.model_version.version, user=user)
    return rollout


def rollout_rollback(*, user=None) -> Rollout:
    """End the rollout: the devices that had its version go back to the version in service."""
    with transaction.atomic():
        rollout = _open_rollout_locked()
        rollout.state, rollout.open = RolloutState.ROLLED_BACK, None
        rollout.save(update_fields=["state", "open", "updated_at"])
        _record(rollout, action="rollback", percent_from=rollout.percent, user=user)
    return rollout
