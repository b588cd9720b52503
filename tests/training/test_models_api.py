"""The model-delivery API phones use: manifest, ETag/304, list, versions, downloads, rollback."""

import hashlib

import numpy as np
import pytest
from django.conf import settings as django_settings
from PIL import Image
from rest_framework.test import APIClient

from collector import storage
from tests.training.conftest import publish
from tests.training.tiny_run import SIZE
from training.services import publishing
from training.services.publishing import (
    PublishError,
    model_file_write_once,
    model_version_put_in_service,
    model_versions_abandon_orphans,
)
from training.models import ModelVersion, ServiceChange

pytestmark = pytest.mark.slow


def fetch(client, url):
    response = client.get(url)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def fetch_range(client, url, range_header, **headers):
    response = client.get(url, HTTP_RANGE=range_header, **headers)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


@pytest.mark.django_db
class TestModelLatestApi:
    def test_it_says_clearly_when_nothing_is_published(self):
        response = APIClient().get("/api/v1/models/latest/")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "no_model"
        assert "No model has been published yet" in response.json()["error"]["message"]

    def test_it_describes_the_model_in_service_for_each_variant(self, trained_result):
        version = publish(trained_result)
        result, _ = trained_result
        for variant in django_settings.TRAINING_TFLITE_VARIANTS:
            response = APIClient().get(f"/api/v1/models/latest/?variant={variant}")
            assert response.status_code == 200, response.content
            body = response.json()
            assert body["version"] == version.version and body["variant"] == variant
            assert body["labels"] == result.labels
            assert body["sha256"] == result.variants[variant].sha256
            assert body["size"] == result.variants[variant].size_bytes
            assert body["metrics"]["accuracy"] == pytest.approx(result.variants[variant].accuracy)
            assert set(body["metrics"]["per_class"]) == set(result.labels)
            assert body["min_app_version"] == django_settings.TRAINING_MIN_APP_VERSION
            spec = body["input"]
            assert (spec["height"], spec["width"]) == (SIZE, SIZE)
            assert spec["resize"] in ("center_crop", "stretch")
            assert spec["dtype"] == ("uint8" if variant == "int8" else "float32")
            if variant == "int8":
                assert spec["mean"] == [0.0, 0.0, 0.0] and spec["std"] == [1.0, 1.0, 1.0]

    def test_it_describes_the_core_ml_package_like_the_others(self, trained_result):
        version = publish(trained_result)
        result, _ = trained_result
        response = APIClient().get("/api/v1/models/latest/?variant=coreml")
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["version"], body["variant"], body["labels"]) == (version.version, "coreml", result.labels)
        assert (body["sha256"], body["size"]) == (result.coreml.sha256, result.coreml.size_bytes)
        # Not evaluated (Core ML runs only on Apple systems): no figures rather than made-up ones.
        assert body["metrics"] == {"accuracy": None, "latency_ms": None, "test_examples": None, "per_class": {},
                                   "interval": None, "photos": None, "method": None}
        # Raw RGB pixels of the centred square: the package's ImageType normalises them itself.
        assert body["input"] == {"height": SIZE, "width": SIZE, "resize": "center_crop", "dtype": "uint8",
                                 "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}

    def test_phones_asking_for_core_ml_get_the_last_version_that_has_it(self, trained_result):
        """A run whose Core ML conversion failed publishes its .tflite files only."""
        import dataclasses

        with_coreml = publish(trained_result)
        result, test = trained_result
        without = publish((dataclasses.replace(result, coreml=None, failed_variants={"coreml": "failed"}), test))
        client = APIClient()
        coreml = client.get("/api/v1/models/latest/?variant=coreml")
        assert coreml.status_code == 200 and coreml.json()["version"] == with_coreml.version
        assert coreml["ETag"] == f'"v{with_coreml.version}-coreml-{result.coreml.sha256[:16]}"'
        assert client.get("/api/v1/models/latest/?variant=int8").json()["version"] == without.version
        # The version itself has no such file: asking for it by number says so.
        missing = client.get(f"/api/v1/models/{without.version}/?variant=coreml")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "variant_not_available"

    def test_it_defaults_to_int8_and_refuses_an_unknown_variant(self, trained_result):
        publish(trained_result)
        assert APIClient().get("/api/v1/models/latest/").json()["variant"] == "int8"
        response = APIClient().get("/api/v1/models/latest/?variant=int4")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"
        assert "variant" in response.json()["error"]["fields"]

    def test_it_answers_304_to_a_current_etag_and_200_after_a_new_version(self, trained_result):
        publish(trained_result)
        client = APIClient()
        first = client.get("/api/v1/models/latest/?variant=int8")
        etag = first["ETag"]
        assert etag and first["Cache-Control"] == "no-cache"
        again = client.get("/api/v1/models/latest/?variant=int8", HTTP_IF_NONE_MATCH=etag)
        assert again.status_code == 304 and again["ETag"] == etag and again.content == b""
        other_variant = client.get("/api/v1/models/latest/?variant=float32", HTTP_IF_NONE_MATCH=etag)
        assert other_variant.status_code == 200 and other_variant["ETag"] != etag
        second = publish(trained_result)
        changed = client.get("/api/v1/models/latest/?variant=int8", HTTP_IF_NONE_MATCH=etag)
        assert changed.status_code == 200
        assert changed.json()["version"] == second.version and changed["ETag"] != etag


@pytest.mark.django_db
class TestModelDownloadApi:
    def test_it_serves_bytes_whose_sha256_is_the_manifests(self, trained_result):
        publish(trained_result)
        client = APIClient()
        manifest = client.get("/api/v1/models/latest/?variant=float16").json()
        assert manifest["download_url"].startswith("http://testserver/api/v1/models/")
        response, body = fetch(client, manifest["download_url"])
        assert response.status_code == 200
        assert hashlib.sha256(body).hexdigest() == manifest["sha256"]
        assert len(body) == manifest["size"] == int(response["Content-Length"])
        assert response["ETag"] == f'"{manifest["sha256"]}"'
        again = client.get(manifest["download_url"], HTTP_IF_NONE_MATCH=response["ETag"])
        assert again.status_code == 304

    def test_it_runs_in_litert_as_the_manifest_says(self, trained_result):
        """A phone's view: download the int8 file, prepare the photo as `input` says, get the recorded answer."""
        from ai_edge_litert.interpreter import Interpreter

        from training import ml

        publish(trained_result)
        result, test = trained_result
        client = APIClient()
        manifest = client.get("/api/v1/models/latest/?variant=int8").json()
        _, body = fetch(client, manifest["download_url"])
        interpreter = Interpreter(model_content=body)
        interpreter.allocate_tensors()
        spec = ml.InputSpec(**manifest["input"])
        recorded = result.variants["int8"].predictions
        for example, expected in zip(test, recorded):
            pixels = np.asarray(Image.open(example.path).convert("RGB"))
            tensor = ml.preprocess_for_inference(pixels, spec)
            assert tensor.dtype == np.uint8
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor.reshape(1, SIZE, SIZE, 3))
            interpreter.invoke()
            output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
            assert manifest["labels"][int(np.argmax(output))] == manifest["labels"][expected]

    def test_it_serves_the_core_ml_zip_with_sha256_etag_and_ranges(self, trained_result, tmp_path):
        import zipfile

        publish(trained_result)
        result, _ = trained_result
        client = APIClient()
        manifest = client.get("/api/v1/models/latest/?variant=coreml").json()
        response, body = fetch(client, manifest["download_url"])
        assert response.status_code == 200 and body == result.coreml.path.read_bytes()
        assert hashlib.sha256(body).hexdigest() == manifest["sha256"] and response["ETag"] == f'"{manifest["sha256"]}"'
        assert f'filename="crowdlens-v{manifest["version"]}-coreml.mlpackage.zip"' in response["Content-Disposition"]
        part, piece = fetch_range(client, manifest["download_url"], "bytes=100-")
        assert part.status_code == 206 and piece == body[100:]
        (tmp_path / "m.zip").write_bytes(body)
        assert "model.mlpackage/Manifest.json" in zipfile.ZipFile(tmp_path / "m.zip").namelist()

    def test_it_serves_clients_that_accept_only_binary(self, trained_result):
        version = publish(trained_result)
        client = APIClient()
        url = client.get("/api/v1/models/latest/?variant=int8").json()["download_url"]
        response = client.get(url, HTTP_ACCEPT="application/octet-stream")
        body = b"".join(response.streaming_content)
        assert response.status_code == 200 and hashlib.sha256(body).hexdigest() == response["ETag"].strip('"')
        missing = client.get(f"/api/v1/models/{version.version + 1}/int8/download/", HTTP_ACCEPT="application/octet-stream")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    def test_it_refuses_unknown_versions_and_variants(self, trained_result):
        version = publish(trained_result)
        assert APIClient().get(f"/api/v1/models/{version.version + 1}/int8/download/").status_code == 404
        assert APIClient().get(f"/api/v1/models/{version.version}/int4/download/").status_code == 404

    # --- byte ranges (RFC 9110): phones resume interrupted downloads -------------------------------

    def _published(self, trained_result, variant="float16"):
        """(client, manifest, the file's bytes) of a freshly published version."""
        publish(trained_result)
        client = APIClient()
        manifest = client.get(f"/api/v1/models/latest/?variant={variant}").json()
        _, whole = fetch(client, manifest["download_url"])
        assert hashlib.sha256(whole).hexdigest() == manifest["sha256"] and len(whole) == manifest["size"]
        return client, manifest, whole

    def test_a_full_download_says_it_accepts_byte_ranges(self, trained_result):
        client, manifest, _ = self._published(trained_result)
        response, _ = fetch(client, manifest["download_url"])
        assert response.status_code == 200 and response["Accept-Ranges"] == "bytes"
        assert not response.has_header("Content-Range")

    def test_each_single_range_form_answers_206_with_exactly_those_bytes(self, trained_result):
        client, manifest, whole = self._published(trained_result)
        size = len(whole)
        assert size > 1000
        cases = {
            "bytes=0-99": (0, 99),
            "bytes=100-": (100, size - 1),
            "bytes=-250": (size - 250, size - 1),
            f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),
            f"bytes=10-{size + 5000}": (10, size - 1),  # a last byte past the end stops at the end
            f"bytes=-{size + 10}": (0, size - 1),  # a suffix longer than the file is the whole file
        }
        for header, (first, last) in cases.items():
            response, body = fetch_range(client, manifest["download_url"], header)
            assert response.status_code == 206, (header, response.status_code)
            assert response["Content-Range"] == f"bytes {first}-{last}/{size}", header
            assert int(response["Content-Length"]) == last - first + 1 == len(body), header
            assert body == whole[first:last + 1], header
            assert response["ETag"] == f'"{manifest["sha256"]}"'
            assert response["Cache-Control"] == "public, max-age=31536000, immutable"
            assert response["Content-Type"] == "application/octet-stream"

    def test_a_range_starting_past_the_end_is_416_in_the_one_error_shape(self, trained_result):
        client, manifest, whole = self._published(trained_result)
        size = len(whole)
        for header in (f"bytes={size}-", f"bytes={size + 100}-{size + 200}", "bytes=-0"):
            response = client.get(manifest["download_url"], HTTP_RANGE=header)
            assert response.status_code == 416, header
            assert response["Content-Range"] == f"bytes */{size}"
            error = response.json()["error"]
            assert error["code"] == "range_not_satisfiable" and error["fields"] == {}
            assert str(size) in error["message"]

    def test_several_ranges_or_a_malformed_range_are_ignored_for_the_whole_file(self, trained_result):
        client, manifest, whole = self._published(trained_result)
        for header in ("bytes=0-1,5-6", "bytes=0-9, 20-29", "items=0-9", "bytes=", "bytes=-", "bytes=abc",
                       "bytes=50-10", "0-9", "bytes 0-9"):
            response, body = fetch_range(client, manifest["download_url"], header)
            assert response.status_code == 200, header
            assert body == whole and int(response["Content-Length"]) == len(whole)
            assert response["Accept-Ranges"] == "bytes" and not response.has_header("Content-Range")

    def test_if_range_serves_the_range_only_for_the_current_strong_etag(self, trained_result):
        client, manifest, whole = self._published(trained_result)
        etag = f'"{manifest["sha256"]}"'
        response, body = fetch_range(client, manifest["download_url"], "bytes=100-199", HTTP_IF_RANGE=etag)
        assert response.status_code == 206 and body == whole[100:200]
        for stale in ('"0123abcd"', f"W/{etag}", manifest["sha256"], "Wed, 21 Oct 2015 07:28:00 GMT"):
            response, body = fetch_range(client, manifest["download_url"], "bytes=100-199", HTTP_IF_RANGE=stale)
            assert response.status_code == 200, stale
            assert body == whole and not response.has_header("Content-Range")
        # A stale If-Range also wins over a range that could not be satisfied: the whole file, not 416.
        response, body = fetch_range(client, manifest["download_url"], f"bytes={len(whole)}-",
                                     HTTP_IF_RANGE='"stale"')
        assert response.status_code == 200 and body == whole

    def test_if_none_match_answers_304_before_any_range(self, trained_result):
        client, manifest, whole = self._published(trained_result)
        etag = f'"{manifest["sha256"]}"'
        for header in ("bytes=0-99", f"bytes={len(whole)}-", "bytes=0-1,5-6"):
            response = client.get(manifest["download_url"], HTTP_RANGE=header, HTTP_IF_RANGE=etag,
                                  HTTP_IF_NONE_MATCH=etag)
            assert response.status_code == 304, header
            assert response["ETag"] == etag and response.content == b""

    def test_a_resumed_download_has_the_manifests_sha256(self, trained_result):
        """A phone loses its connection part-way through the 200, then resumes with Range + If-Range."""
        client, manifest, _ = self._published(trained_result, variant="int8")
        first = client.get(manifest["download_url"])
        assert first.status_code == 200
        received = b""
        stream = first.streaming_content
        for chunk in stream:
            received += chunk
            if len(received) >= manifest["size"] // 3:
                break  # the connection drops: the phone keeps what it had
        for _ in stream:
            pass  # (drained, not kept: the test client closes the response, and the database connection, at its end)
        assert 0 < len(received) < manifest["size"]
        etag = first["ETag"]
        middle_end = (2 * manifest["size"]) // 3
        middle, body = fetch_range(client, manifest["download_url"], f"bytes={len(received)}-{middle_end}",
                                   HTTP_IF_RANGE=etag)
        assert middle.status_code == 206
        received += body
        rest, body = fetch_range(client, manifest["download_url"], f"bytes={len(received)}-", HTTP_IF_RANGE=etag)
        assert rest.status_code == 206
        assert rest["Content-Range"] == f"bytes {len(received)}-{manifest['size'] - 1}/{manifest['size']}"
        received += body
        assert len(received) == manifest["size"]
        assert hashlib.sha256(received).hexdigest() == manifest["sha256"]


@pytest.mark.django_db
class TestModelListAndDetailApi:
    def test_it_lists_published_versions_newest_first(self, trained_result):
        first = publish(trained_result)
        second = publish(trained_result)
        body = APIClient().get("/api/v1/models/").json()
        assert [row["version"] for row in body["results"]] == [second.version, first.version]
        assert [row["in_service"] for row in body["results"]] == [True, False]
        assert {v["variant"] for v in body["results"][0]["variants"]} == set(django_settings.TRAINING_VARIANT_NAMES)

    def test_it_gives_any_published_versions_manifest(self, trained_result):
        first = publish(trained_result)
        publish(trained_result)
        response = APIClient().get(f"/api/v1/models/{first.version}/?variant=dynamic")
        assert response.status_code == 200
        assert response.json()["version"] == first.version and response.json()["variant"] == "dynamic"
        missing = APIClient().get("/api/v1/models/99/")
        assert missing.status_code == 404 and missing.json()["error"]["message"] == "There is no published model version 99."


@pytest.mark.django_db
class TestPublishing:
    def test_it_writes_every_file_under_versioned_keys(self, trained_result, settings):
        version = publish(trained_result)
        result, _ = trained_result
        root = settings.MEDIA_ROOT
        files = {variant: (vr.path, vr.sha256) for variant, vr in result.variants.items()}
        files["coreml"] = (result.coreml.path, result.coreml.sha256)
        assert set(files) == set(django_settings.TRAINING_VARIANT_NAMES)
        for variant, (path, sha) in files.items():
            folder = root / f"models/v{version.version}/{variant}"
            name = "model.mlpackage.zip" if variant == "coreml" else "model.tflite"
            assert (folder / name).read_bytes() == path.read_bytes()
            assert (folder / "labels.txt").read_text().splitlines() == result.labels
            import json

            metadata = json.loads((folder / "metadata.json").read_text())
            assert metadata["sha256"] == sha and metadata["version"] == version.version

    def test_it_never_overwrites_a_published_key(self, trained_result):
        version = publish(trained_result)
        key = f"models/v{version.version}/int8/model.tflite"
        before = storage.open_file(key).read()
        with pytest.raises(PublishError):
            model_file_write_once(key, b"something else")
        assert storage.open_file(key).read() == before

    def test_a_crash_between_file_writes_and_the_publish_commit_publishes_nothing(self, trained_result, monkeypatch,
                                                                                  settings):
        """The process dies (SystemExit: no cleanup runs) after the files are written, before the commit."""
        first = publish(trained_result)

        def killed(files):
            raise SystemExit("killed")

        monkeypatch.setattr(publishing, "model_files_verify", killed)
        with pytest.raises(SystemExit):
            publish(trained_result)
        half = ModelVersion.objects.get(version=first.version + 1)
        assert half.status == "pending" and not half.in_service and not half.files.exists()
        assert APIClient().get(f"/api/v1/models/{half.version}/").status_code == 404
        assert APIClient().get("/api/v1/models/latest/").json()["version"] == first.version
        assert [r["version"] for r in APIClient().get("/api/v1/models/").json()["results"]] == [first.version]
        # The next run's start sweeps it: abandoned, its partial files removed, its number never reused.
        monkeypatch.undo()
        assert model_versions_abandon_orphans() == 1
        half.refresh_from_db()
        assert half.status == "abandoned"
        assert not (settings.MEDIA_ROOT / f"models/v{half.version}").exists() or not any(
            p.is_file() for p in (settings.MEDIA_ROOT / f"models/v{half.version}").rglob("*"))
        third = publish(trained_result)
        assert third.version == half.version + 1
        assert APIClient().get("/api/v1/models/latest/").json()["version"] == third.version


@pytest.mark.django_db
class TestRollback:
    def test_it_puts_an_older_version_back_in_service_and_forward_again(self, trained_result, admin_client):
        first = publish(trained_result)
        second = publish(trained_result)
        client = APIClient()
        etag = client.get("/api/v1/models/latest/")["ETag"]
        response = admin_client.post("/admin/training/modelversion/", {
            "action": "put_in_service", "_selected_action": [first.pk]})
        assert response.status_code == 302
        rolled = client.get("/api/v1/models/latest/", HTTP_IF_NONE_MATCH=etag)
        assert rolled.status_code == 200 and rolled.json()["version"] == first.version
        model_version_put_in_service(version=second.version)
        assert client.get("/api/v1/models/latest/").json()["version"] == second.version
        assert list(ServiceChange.objects.order_by("id").values_list("reason", "from_version", "to_version")) == [
            ("published", None, first.version), ("published", first.version, second.version),
            ("rollback", second.version, first.version), ("forward", first.version, second.version),
        ]
        assert ModelVersion.objects.filter(in_service=True).count() == 1


@pytest.mark.django_db
class TestIdenticalFiles:
    def test_files_byte_identical_to_the_model_in_service_are_recognised(self, trained_result):
        from training.services.publishing import model_version_identical_in_service

        result, _ = trained_result
        assert model_version_identical_in_service(result=result) is None  # nothing in service yet
        first = publish(trained_result)
        assert model_version_identical_in_service(result=result) == first
        second = publish(trained_result)  # a rollback target with the same files is still "identical"
        model_version_put_in_service(version=first.version)
        assert model_version_identical_in_service(result=result) == first
        assert second.version == first.version + 1

    def test_files_that_differ_only_in_metadata_are_the_same_model_and_a_weight_is_not(self, trained_result,
                                                                                        tmp_path):
        import dataclasses

        from ai_edge_litert import schema_py_generated as schema
        import flatbuffers

        from training.ml.identity import content_sha256
        from training.services.publishing import model_version_identical_in_service

        result, _ = trained_result
        first = publish(trained_result)

        def rewritten(change) -> dict:
            variants = {}
            for name, vr in result.variants.items():
                model = schema.ModelT.InitFromPackedBuf(bytearray(vr.path.read_bytes()), 0)
                change(model)
                builder = flatbuffers.Builder(1024)
                builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
                path = tmp_path / f"{change.__name__}-{name}.tflite"
                path.write_bytes(bytes(builder.Output()))
                variants[name] = dataclasses.replace(vr, path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
            return variants

        def metadata_naming_another_run(model):
            buffer = schema.BufferT()
            buffer.data = list(b"run 99")
            model.buffers.append(buffer)
            entry = schema.MetadataT()
            entry.name, entry.buffer = "TFLITE_METADATA", len(model.buffers) - 1
            model.metadata = [*(model.metadata or []), entry]

        def one_weight_changed(model):
            for buffer in model.buffers:
                if buffer.data is not None and len(buffer.data) > 16:
                    buffer.data[0] = (int(buffer.data[0]) + 1) % 256
                    return

        renamed = dataclasses.replace(result, variants=rewritten(metadata_naming_another_run))
        assert renamed.variants["int8"].sha256 != first.files.get(variant="int8").sha256
        assert model_version_identical_in_service(result=renamed) == first
        changed = dataclasses.replace(result, variants=rewritten(one_weight_changed))
        assert content_sha256(changed.variants["int8"].path.read_bytes()) != content_sha256(
            result.variants["int8"].path.read_bytes())
        assert model_version_identical_in_service(result=changed) is None
