"""Publishing model versions: immutable files under versioned keys, one commit that puts a version in service,
abandoning versions cut off mid-publish, and rollback or forward to any published version."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from collector import storage
from config.domain_errors import Conflict, NotFound
from training import ml
from training.ml.identity import content_sha256
from training.models import (
    DatasetVersion,
    ModelFile,
    ModelVersion,
    Rollout,
    RolloutChange,
    RolloutState,
    ServiceChange,
    TrainingRun,
    VersionStatus,
)


class PublishError(Conflict):
    """Storage or the version's row is not as publishing left it: nothing was published."""

    default_code = "publish_failed"


def model_file_name(variant: str) -> str:
    """The model file's name in storage and its extension in downloads."""
    return "model.mlpackage.zip" if variant == ml.COREML else "model.tflite"


def model_file_keys(version: int, variant: str) -> dict[str, str]:
    prefix = f"models/v{version}/{variant}"
    return {"model_key": f"{prefix}/{model_file_name(variant)}", "labels_key": f"{prefix}/labels.txt",
            "metadata_key": f"{prefix}/metadata.json"}


def _reserve_version(*, run: TrainingRun, result: ml.TrainResult, dataset: DatasetVersion) -> ModelVersion:
    metrics = {name: {k: v for k, v in m.items() if k != "predictions"} for name, m in run.metrics.items()}
    for attempt in range(5):
        try:
            with transaction.atomic():
                number = (ModelVersion.objects.aggregate(m=Max("version"))["m"] or 0) + 1
                return ModelVersion.objects.create(
                    version=number, status=VersionStatus.PENDING, run=run, dataset_version=dataset,
                    strategy=result.strategy, labels=list(result.labels), metrics=metrics,
                    min_app_version=settings.TRAINING_MIN_APP_VERSION,
                    default_variant=run.estimate.get("default_variant", ""),
                    default_variant_why=run.estimate.get("default_variant_why", ""),
                )
        except IntegrityError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def model_version_publish(*, run: TrainingRun, result: ml.TrainResult, dataset: DatasetVersion) -> ModelVersion:
    """Reserve a number, write every file under its immutable keys, check them, then publish in one commit.

    A crash before the last step leaves a *pending* version that no API
    shows; ``model_versions_abandon_orphans`` later marks it abandoned and
    removes its partial files. Its number is never reused.
    """
    version = _reserve_version(run=run, result=result, dataset=dataset)
    files: list[ModelFile] = []
    try:
        labels_txt = ("\n".join(result.labels) + "\n").encode()
        exported = [(name, vr.path, result.input_specs[name]) for name, vr in result.variants.items()]
        if result.coreml is not None:
            exported.append((ml.COREML, result.coreml.path, result.coreml.input_spec))
        for name, path, input_spec in exported:
            keys = model_file_keys(version.version, name)
            data = Path(path).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            spec = dataclasses.asdict(input_spec)
            metadata = {
                "version": version.version, "variant": name, "sha256": sha, "size": len(data),
                "labels": list(result.labels), "input": spec, "metrics": version.metrics.get(name, {}),
                "strategy": result.strategy, "dataset_version": dataset.pk, "created_at": version.created_at.isoformat(),
                "default_variant": {"variant": version.default_variant, "why": version.default_variant_why},
                "min_app_version": version.min_app_version,
            }
            for key, payload in ((keys["model_key"], data), (keys["labels_key"], labels_txt),
                                 (keys["metadata_key"], json.dumps(metadata, indent=2).encode())):
                model_file_write_once(key, payload)
            files.append(ModelFile(model_version=version, variant=name, sha256=sha, size_bytes=len(data),
                                   input_spec=spec, **keys))
        model_files_verify(files)
    except Exception:
        _model_version_abandon(version)
        raise
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != VersionStatus.PENDING:
            raise PublishError(f"v{locked.version} is {locked.status}, not pending; it was not published.")
        ModelFile.objects.bulk_create(files)
        previous = ModelVersion.objects.select_for_update().filter(in_service=True).first()
        ModelVersion.objects.filter(in_service=True).update(in_service=None)
        locked.status, locked.published_at, locked.in_service = VersionStatus.PUBLISHED, timezone.now(), True
        locked.save(update_fields=["status", "published_at", "in_service"])
        ServiceChange.objects.create(from_version=previous.version if previous else None, to_version=locked.version,
                                     reason="published")
        _rollout_supersede(user=None)
    return locked


def model_version_identical_in_service(*, result: ml.TrainResult) -> ModelVersion | None:
    """The version in service when every .tflite file ``result`` exported computes exactly what its file does.

    Then publishing would make phones download the same model again under a new number. Files are
    compared byte for byte, and otherwise by ``content_sha256`` (the model without its metadata, which
    names the run that wrote it). A Core ML package needs no own check (it is converted from the same
    weights), but a run that has one where the version in service has none is not identical: it brings
    iOS its first file.
    """
    current = ModelVersion.objects.filter(in_service=True, status=VersionStatus.PUBLISHED).first()
    if current is None or list(current.labels) != list(result.labels):
        return None
    served = {f.variant: f for f in current.files.all() if f.model_key.endswith(".tflite")}
    if set(served) != set(result.variants):
        return None
    if result.coreml is not None and not current.files.filter(variant=ml.COREML).exists():
        return None
    for name, vr in result.variants.items():
        if served[name].sha256 == vr.sha256:
            continue
        with storage.open_file(served[name].model_key) as handle:
            theirs = content_sha256(handle.read())
        if theirs != content_sha256(Path(vr.path).read_bytes()):
            return None
    return current


def _rollout_supersede(*, user) -> None:
    """A change of the version in service for all ends any staged rollout (inside the caller's transaction)."""
    for rollout in Rollout.objects.select_for_update().filter(open=True):
        rollout.state, rollout.open = RolloutState.SUPERSEDED, None
        rollout.save(update_fields=["state", "open", "updated_at"])
        RolloutChange.objects.create(rollout=rollout, action="end", percent_from=rollout.percent,
                                     percent_to=rollout.percent, state=rollout.state, changed_by=user)


def model_file_write_once(key: str, payload: bytes) -> None:
    """Published keys are immutable: refuse to write over anything already there."""
    if storage.exists(key):
        raise PublishError(f"{key} already exists in storage; refusing to overwrite it.")
    storage.save(key, payload)


def model_files_verify(files: list[ModelFile]) -> None:
    from django.core.files.storage import default_storage

    for f in files:
        for key in (f.model_key, f.labels_key, f.metadata_key):
            if not storage.exists(key):
                raise PublishError(f"{key} is missing from storage after writing it.")
        if default_storage.size(f.model_key) != f.size_bytes:
            raise PublishError(f"{f.model_key} has the wrong size in storage.")


def _model_version_abandon(version: ModelVersion) -> None:
    if ModelVersion.objects.filter(pk=version.pk, status=VersionStatus.PENDING).update(status=VersionStatus.ABANDONED):
        keys = [k for variant in settings.TRAINING_VARIANT_NAMES for k in model_file_keys(version.version, variant).values()]
        storage.delete_quietly([k for k in keys if _exists_quietly(k)])


def _exists_quietly(key: str) -> bool:
    try:
        return storage.exists(key)
    except Exception:
        return False


def model_versions_abandon_orphans() -> int:
    """Pending versions whose run is no longer running were cut off mid-publish: abandon them."""
    orphans = ModelVersion.objects.filter(status=VersionStatus.PENDING).exclude(run__active=True)
    count = 0
    for version in orphans:
        _model_version_abandon(version)
        count += 1
    return count


def model_version_put_in_service(*, version: int, user=None) -> ModelVersion:
    """Rollback or forward: any published version can be the one phones get."""
    with transaction.atomic():
        target = ModelVersion.objects.select_for_update().filter(version=version).first()
        if target is None or target.status != VersionStatus.PUBLISHED:
            raise NotFound(f"There is no published model version {version}.")
        current = ModelVersion.objects.select_for_update().filter(in_service=True).first()
        if current is not None and current.pk == target.pk:
            return target
        ModelVersion.objects.filter(in_service=True).update(in_service=None)
        target.in_service = True
        target.save(update_fields=["in_service"])
        reason = "rollback" if current is not None and target.version < current.version else "forward"
        ServiceChange.objects.create(from_version=current.version if current else None, to_version=target.version,
                                     reason=reason, changed_by=user)
        _rollout_supersede(user=user)
    return target
