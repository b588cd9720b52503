"""The real pipeline end to end, on tiny generated photos uploaded and approved through collector.

photos -> `manage.py train` -> published version -> manifest -> download -> LiteRT on the downloaded file.
"""

import hashlib
import io
import logging
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from collector import storage
from collector.models import Photo
from tests.training.short_log import assert_a_short_log
from training import ml, selectors
from training.services import publishing
from training.models import FeatureCache, LabelAudit, ModelVersion, RunOutcome, RunStatus, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def download(client, url) -> bytes:
    response = client.get(url)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def top1(model_bytes: bytes, pixels: np.ndarray, spec: ml.InputSpec) -> int:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    tensor = ml.preprocess_for_inference(pixels, spec)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], tensor.reshape(detail["shape"]).astype(detail["dtype"]))
    interpreter.invoke()
    return int(np.argmax(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]))


TFLITE = ["dynamic", "float16", "float32", "int8"]  # a version's files, in their order (variant)


# Five trainings; what they ask of the database (claims, publishing, the identical check, the gate's records)
# is asserted on both databases by test_runs.py, test_models_api.py (TestPublishing, TestIdenticalFiles,
# TestRollback) and test_selectors.py at a fraction of the cost: CI runs this chain on PostgreSQL only.
@pytest.mark.any_database
class TestNightAfterNight:
    """One installation's nights, each a real `manage.py train` on the same photos: publish, skip, identical,
    Core ML turned on, a failed conversion, a worse candidate held back (one chain: each night starts from the
    last, so five trainings prove what ten did as separate tests)."""

    def test_publish_skip_identical_core_ml_and_the_release_gate(self, tiny_training, three_classes, capfd, caplog,
                                                                 monkeypatch):
        first = self.night_1_trains_publishes_and_phones_get_what_was_evaluated(capfd)
        self.night_2_changes_nothing_and_skips()
        self.night_3_forced_on_the_same_photos_publishes_nothing(first)
        with_coreml = self.night_4_core_ml_turned_on_publishes_its_first_package_and_prints_a_short_log(
            tiny_training, capfd, caplog)
        published = self.night_5_a_failed_conversion_only_loses_that_file(three_classes, monkeypatch, with_coreml)
        self.night_6_holds_back_a_worse_candidate(tiny_training, published)

    def night_1_trains_publishes_and_phones_get_what_was_evaluated(self, capfd):
        call_command("train", "--no-progress")
        run = TrainingRun.objects.get()
        assert run.status == RunStatus.SUCCEEDED, run.error + run.log
        assert run.outcome == RunOutcome.PUBLISHED and run.active is None and run.percent == 100
        assert run.strategy == "fine_tune"  # TRAINING_FINE_TUNE_MIN_PER_CLASS=1 in the tiny settings
        assert {"dataset", "download", "features", "train_head", "fine_tune", "export", "evaluate", "gate",
                "publish"} <= set(run.phase_seconds)
        assert [d["decision"] for d in run.decisions][-2:] == ["gate_int8_ok", "published"]
        assert set(run.metrics) == {"float32", "float16", "dynamic", "int8"}
        assert len(run.history["loss"]) >= 1
        assert "published v1" in capfd.readouterr().out

        client = APIClient()
        test_rows = [r for r in run.dataset_version.manifest if r["split"] == "test"]
        assert test_rows
        keys = dict(Photo.objects.filter(pk__in=[r["id"] for r in test_rows]).values_list("pk", "training_key"))
        for variant in ("int8", "float32"):
            manifest = client.get(f"/api/v1/models/latest/?variant={variant}").json()
            assert manifest["version"] == 1 and manifest["labels"] == run.dataset_version.labels
            body = download(client, manifest["download_url"])
            assert hashlib.sha256(body).hexdigest() == manifest["sha256"]
            spec = ml.InputSpec(**manifest["input"])
            recorded = run.metrics[variant]["predictions"]
            agree = 0
            for row in test_rows:
                pixels = np.asarray(Image.open(io.BytesIO(storage.open_file(keys[row["id"]]).read())).convert("RGB"))
                assert top1(body, pixels, spec) == recorded[str(row["id"])]
                agree += manifest["labels"][recorded[str(row["id"])]] == row["label"]
            assert agree / len(test_rows) == pytest.approx(manifest["metrics"]["accuracy"])

        # For the challenges app: recall per label of the model in service, embeddings of the photos.
        recall = selectors.latest_recall_by_label()
        assert set(recall) == set(run.dataset_version.labels)
        ids = [r["id"] for r in run.dataset_version.manifest]
        embeddings = selectors.photo_embeddings(ids)
        assert set(embeddings) == set(ids) and embeddings[ids[0]].ndim == 1

        # For the label audit: the trained network's features of every photo, which the audit then reads (with
        # no photo sent back here: the next nights must see the same dataset).
        assert ":trained=" in run.model_features and "model_features" in run.phase_seconds
        shas = set(Photo.objects.filter(pk__in=ids).values_list("sha256", flat=True))
        assert set(FeatureCache.objects.filter(cache_id=run.model_features).values_list("sha256", flat=True)) == shas
        call_command("label_audit", "--no-progress", "--limit", "0")
        audit = LabelAudit.objects.get()
        assert audit.features.endswith(f"run #{run.pk}'s fine-tuned network") and audit.photos == len(ids), audit.error
        return run

    def night_2_changes_nothing_and_skips(self):
        # Nothing changed: a run without --force records a skip (with a new approved photo it trains again:
        # night 5).
        call_command("train", "--no-progress")
        skipped = TrainingRun.objects.order_by("-id").first()
        assert skipped.status == RunStatus.SKIPPED and "No approved photo changed" in skipped.decisions[-1]["detail"]
        assert ModelVersion.objects.count() == 1

    def night_3_forced_on_the_same_photos_publishes_nothing(self, first):
        etag = APIClient().get("/api/v1/models/latest/")["ETag"]
        # Same photos, same settings, same seed, features from the cache: the same model comes out.
        call_command("train", "--no-progress", "--force")
        second = TrainingRun.objects.order_by("-id").first()
        assert second.pk != first.pk
        assert second.status == RunStatus.SUCCEEDED and second.outcome == RunOutcome.IDENTICAL
        assert second.decisions[-1]["decision"] == "identical"
        assert second.decisions[-1]["detail"].startswith("Identical to v1")
        assert second.model_version.version == 1 and ModelVersion.objects.count() == 1
        assert second.model_features == first.model_features, "the same network: the same features, kept"
        assert APIClient().get("/api/v1/models/latest/", HTTP_IF_NONE_MATCH=etag).status_code == 304

    def night_4_core_ml_turned_on_publishes_its_first_package_and_prints_a_short_log(self, tiny_training, capfd,
                                                                                      caplog) -> dict:
        # The operator turns Core ML on: the same .tflite files come out, and iOS gets its first package.
        tiny_training.TRAINING_VARIANTS = (*TFLITE, "coreml")
        capfd.readouterr()
        with caplog.at_level(logging.INFO):
            call_command("train", "--force")  # with its progress bar, as an operator runs it
        run = TrainingRun.objects.order_by("-id").first()
        assert run.outcome != RunOutcome.IDENTICAL, run.decisions
        assert run.outcome == RunOutcome.PUBLISHED, run.decisions
        out, err = capfd.readouterr()
        assert_a_short_log(out, err, caplog.records, coreml=True)  # every converter, Core ML's too, and no noise
        assert "published v2" in out
        client = APIClient()
        assert client.get("/api/v1/models/latest/", {"variant": "coreml"}).status_code == 200
        manifest = client.get("/api/v1/models/latest/?variant=coreml").json()
        assert manifest["version"] == 2 and manifest["input"]["dtype"] == "uint8"
        body = download(client, manifest["download_url"])
        assert hashlib.sha256(body).hexdigest() == manifest["sha256"] and body[:2] == b"PK"
        # The .tflite file names the run in its metadata (the version number comes later).
        float32 = download(client, client.get("/api/v1/models/latest/?variant=float32").json()["download_url"])
        from training.ml import tflite_metadata

        assert tflite_metadata.read(float32).version == f"run {run.pk}"
        return manifest

    def night_5_a_failed_conversion_only_loses_that_file(self, three_classes, monkeypatch, with_coreml):
        import coremltools as ct

        def unsupported(*args, **kwargs):
            raise NotImplementedError("Conversion for TF op 'Foo' not implemented.")

        monkeypatch.setattr(ct, "convert", unsupported)
        # A new approved photo: the same photos again would give the same float32 model, which publishes
        # nothing (night 3).
        three_classes.add("red-disc", 1)
        call_command("train", "--no-progress", "--force")
        run = TrainingRun.objects.order_by("-id").first()
        assert run.outcome == RunOutcome.PUBLISHED, run.decisions
        failed = [d["detail"] for d in run.decisions if d["decision"] == "variant_failed"]
        assert len(failed) == 1 and "coreml" in failed[0] and "Foo" in failed[0]
        assert [f.variant for f in ModelVersion.objects.get(version=3).files.all()] == TFLITE
        # A new network: its features replace the earlier networks' (the frozen backbone's stay).
        trained = set(FeatureCache.objects.filter(cache_id__contains=":trained=").values_list("cache_id", flat=True))
        assert trained == {run.model_features}
        assert FeatureCache.objects.filter(cache_id=selectors.embedding_cache_id()).exists()
        client = APIClient()
        assert client.get("/api/v1/models/latest/?variant=float32").json()["version"] == 3
        # Phones asking for Core ML keep the last version that has it.
        assert client.get("/api/v1/models/latest/?variant=coreml").json()["sha256"] == with_coreml["sha256"]
        monkeypatch.undo()
        return run

    def night_6_holds_back_a_worse_candidate(self, tiny_training, published):
        tiny_training.TRAINING_VARIANTS = ("float32", "int8")
        tiny_training.TRAINING_DEFAULT_VARIANT = "int8"
        # The next night's candidate learns nothing (learning rate 0): the gate must keep v3.
        tiny_training.TRAINING_LEARNING_RATE_HEAD = 0.0
        tiny_training.TRAINING_LEARNING_RATE_FINE_TUNE = 0.0
        # ~6 test photos cannot make any drop significant; the paired test is proven in test_gate.py, and
        # alpha 1 counts every drop beyond the margin, so this test is about what holding back does.
        tiny_training.TRAINING_GATE_ALPHA = 1.0
        call_command("train", "--no-progress", "--force")
        second = TrainingRun.objects.order_by("-id").first()
        assert second.status == RunStatus.SUCCEEDED and second.outcome == RunOutcome.HELD_BACK
        decisions = {d["decision"]: d["detail"] for d in second.decisions}
        assert "gate_accuracy_worse" in decisions and "v3 in service" in decisions["gate_accuracy_worse"]
        assert second.gate["service"]["version"] == 3
        # Same photos, same backbone: the second night computes no feature again.
        assert second.feature_stats["computed"] == 0 and second.feature_stats["reused"] > 0
        assert second.gate["service"]["accuracy"] == pytest.approx(published.metrics["float32"]["accuracy"])
        assert ModelVersion.objects.count() == 3
        assert APIClient().get("/api/v1/models/latest/").json()["version"] == 3


# Two trainings; what a killed publish leaves in the database is asserted on both databases at a fraction of
# the cost by test_models_api.py (TestPublishing: a crash between the file writes and the publish commit) and
# test_runs.py (a stale run failed, the next one proceeding): CI runs this on PostgreSQL only.
@pytest.mark.any_database
class TestKilledWhilePublishing:
    def test_a_run_killed_while_publishing_leaves_nothing_half_published_and_the_next_run_proceeds(
            self, tiny_training, three_classes, monkeypatch, settings):
        tiny_training.TRAINING_VARIANTS = ("float32", "int8")
        settings.TRAINING_STALE_AFTER = 600

        def killed(files):  # the files are written; the process dies before the publish commit
            raise SystemExit("killed")

        monkeypatch.setattr(publishing, "model_files_verify", killed)
        with pytest.raises(SystemExit):
            call_command("train", "--no-progress")
        dead = TrainingRun.objects.get()
        assert dead.status == RunStatus.RUNNING and dead.active  # nobody was left to say otherwise
        assert not ModelVersion.objects.filter(status="published").exists()
        assert APIClient().get("/api/v1/models/latest/").status_code == 404
        assert APIClient().get("/api/v1/models/1/").status_code == 404
        assert (settings.MEDIA_ROOT / "models/v1/int8/model.tflite").exists()  # written, never published

        monkeypatch.undo()
        call_command("train", "--no-progress")  # the dead run still looks alive: this one does nothing
        assert TrainingRun.objects.count() == 1
        TrainingRun.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=601))
        call_command("train", "--no-progress")
        dead.refresh_from_db()
        assert dead.status == RunStatus.FAILED and dead.error.startswith("Stale")
        nxt = TrainingRun.objects.exclude(pk=dead.pk).get()
        assert nxt.status == RunStatus.SUCCEEDED and nxt.outcome == RunOutcome.PUBLISHED
        assert dict(ModelVersion.objects.values_list("version", "status")) == {1: "abandoned", 2: "published"}
        assert not (settings.MEDIA_ROOT / "models/v1/int8/model.tflite").exists()
        manifest = APIClient().get("/api/v1/models/latest/?variant=int8").json()
        assert manifest["version"] == 2
        assert hashlib.sha256(download(APIClient(), manifest["download_url"])).hexdigest() == manifest["sha256"]
