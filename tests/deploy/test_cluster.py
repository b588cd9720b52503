"""Proof of docs/deploy.md: Crowdlens as separate processes, as it runs across hosts.

deploy/localcluster.py starts, as separate processes on free ports, its own
PostgreSQL (a throw-away cluster, run as the postgres user when the tests run
as root) and Redis, moto's S3 server, two gunicorn "hosts" behind nginx
(Debian's, the site from deploy/nginx/), the scheduler and a trainworker,
each in its own folder; nothing depends on servers already running on the
machine. Everything the tests do goes through nginx over TLS, as a phone's
requests would.
"""

from __future__ import annotations

import hashlib
import runpy
import http.client
import shutil
import ssl
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.training.conftest import CLASSES, class_image

NEEDS_NGINX = pytest.mark.skipif(not Path("/usr/sbin/nginx").exists() and not shutil.which("nginx"),
                                 reason="Debian's nginx is not installed (deploy/ensure-test-tools.sh installs it)")
pytestmark = [pytest.mark.slow, NEEDS_NGINX]


def skip_without_own_services() -> None:
    """The cluster starts its own PostgreSQL and Redis: skip, naming what is missing, where they are not installed."""
    from deploy.localcluster import own_services_missing

    missing = own_services_missing()
    if missing:
        pytest.skip(f"Not installed: {', '.join(missing)} (deploy/ensure-test-tools.sh installs them)")

SIGNUP_RATE = 6  # per hour: the anonymous throttle the forged X-Forwarded-For tries to escape
PHOTOS_PER_LABEL = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from deploy.localcluster import LocalCluster

    skip_without_own_services()
    root = tmp_path_factory.mktemp("cluster")
    env = {"SIGNUP_RATE": f"{SIGNUP_RATE}/hour", "PHOTO_UPLOAD_RATE": "1000/hour",
           "PHOTO_MAX_BYTES": str(2 * 1024 * 1024)}
    with LocalCluster(root, web_hosts=2, services="own", env=env) as cluster:
        try:
            cluster.start_web()
            yield cluster
        except BaseException:
            print(cluster.logs())
            raise


class Phone:
    """A client that knows only the public address (nginx) and trusts the site's certificate."""

    def __init__(self, cluster, token: str | None = None):
        self.cluster = cluster
        self.session = requests.Session()
        self.verify = str(cluster.ca_file)  # per request: a session's verify loses to REQUESTS_CA_BUNDLE
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def get(self, path, **kw):
        return self.session.get(self.cluster.url(path), timeout=60, verify=self.verify, **kw)

    def post(self, path, **kw):
        return self.session.post(self.cluster.url(path), timeout=120, verify=self.verify, **kw)

    def upload(self, data: bytes, label: str):
        return self.post("/api/v1/photos/", files={"image": ("photo.jpg", data, "image/jpeg")}, data={"label": label})


@pytest.fixture(scope="module")
def people(cluster):
    labels = cluster.root / "labels.txt"
    labels.write_text("".join(f"{slug}\n" for slug in CLASSES))
    cluster.manage("labels_import", str(labels))
    cluster.manage("createsuperuser", "--noinput", DJANGO_SUPERUSER_USERNAME="reviewer",
                   DJANGO_SUPERUSER_PASSWORD="a-long-review-password", DJANGO_SUPERUSER_EMAIL="r@example.org")
    cluster.manage("reviewers_group", "--add", "reviewer")
    anonymous = Phone(cluster)
    signup = anonymous.post("/api/v1/volunteers/", json={"display_name": "alice", "password": "a-long-alice-password",
                                                         "consent_training": True})
    assert signup.status_code == 201, signup.text
    token = anonymous.post("/api/v1/auth/token/", json={"username": "reviewer", "password": "a-long-review-password"})
    assert token.status_code == 200, token.text
    return Phone(cluster, signup.json()["token"]), Phone(cluster, token.json()["token"])


def assert_security_headers(headers, what: str) -> None:
    """The headers the site's own answers carry (config/settings.py), on an answer nginx made itself."""
    headers = {name.lower(): value for name, value in headers.items()}
    assert headers.get("strict-transport-security", "").startswith("max-age=31536000"), (what, headers)
    assert headers.get("x-content-type-options") == "nosniff", (what, headers)
    assert headers.get("x-frame-options") == "DENY", (what, headers)
    assert headers.get("content-security-policy") == "default-src 'none'; frame-ancestors 'none'", (what, headers)


class TestAcrossHosts:
    def test_a_photo_goes_from_a_phone_to_a_model_trained_on_another_host(self, cluster, people):
        phone, reviewer = people
        cluster.start_scheduler()
        cluster.start_trainworker()  # idle until a run is queued (it loads TensorFlow meanwhile)
        seed = 0
        for slug in CLASSES:
            for _ in range(PHOTOS_PER_LABEL):
                seed += 1
                response = phone.upload(class_image(slug, seed), slug)
                assert response.status_code == 201, response.text
                review = reviewer.post(f"/api/v1/photos/{response.json()['id']}/review/", json={"decision": "approve"})
                assert review.status_code == 200, review.text
        assert phone.get("/api/v1/models/latest/").json()["error"]["code"] == "no_model"

        # The nightly job, exactly as the scheduler runs it at TRAINING_NIGHTLY_AT: with TRAINING_WORKER=remote
        # it only queues the run (a fresh installation's scheduler catches up on nothing, so it is run here).
        assert cluster.sql("SELECT count(*) FROM training_trainingrun") == [(0,)]
        nightly = next(job["command"] for job in cluster.scheduler_jobs() if job["id"] == "training-nightly")
        assert nightly == ["train", "--trigger", "scheduler", "--enqueue"]
        assert "queued for a training worker" in cluster.manage(*nightly).stdout
        deadline = time.monotonic() + 240
        manifest = None
        while time.monotonic() < deadline:
            response = phone.get("/api/v1/models/latest/?variant=float32")
            if response.status_code == 200:
                manifest = response.json()
                break
            failed = cluster.sql("SELECT error FROM training_trainingrun WHERE status = 'failed'")
            assert not failed, f"{failed}\n{cluster.logs()}"
            time.sleep(2)
        assert manifest is not None, f"no model was published in time\n{cluster.logs()}"

        run = cluster.sql("SELECT trigger, host, status, outcome FROM training_trainingrun")
        assert run == [("scheduler", run[0][1], "succeeded", "published")]
        assert manifest["labels"] == sorted(CLASSES)
        # The manifest points to a presigned S3 URL (not to a web host), and its bytes are the model it describes.
        assert manifest["download_url"].startswith(f"{cluster.s3_endpoint}/{cluster.bucket}/models/")
        assert "Signature=" in manifest["download_url"] or "X-Amz-Signature=" in manifest["download_url"]
        model = requests.get(manifest["download_url"], timeout=60)
        assert model.status_code == 200 and len(model.content) == manifest["size"]
        assert hashlib.sha256(model.content).hexdigest() == manifest["sha256"]

        # The worker said which devices TensorFlow uses, and both processes beat, side by side.
        assert "TensorFlow devices: /physical_device:CPU:0 (CPU)" in cluster.log("trainworker", tail=100_000)
        beats = dict(cluster.sql("SELECT kind, count(*) FROM training_processheartbeat WHERE stopped_at IS NULL "
                                 "AND beat_at > now() - interval '30 seconds' GROUP BY kind"))
        assert beats == {"scheduler": 1, "trainworker": 1}
        # Nothing on disk was shared: the worker's folder holds no photo and no model.
        worker_files = [p for p in (cluster.root / "trainworker").rglob("*") if p.is_file()]
        assert not [p for p in worker_files if p.suffix in (".jpg", ".tflite")], worker_files

        assert cluster.stop("trainworker") == 0, cluster.log("trainworker")
        assert "Training worker stopped." in cluster.log("trainworker", tail=2000)
        assert cluster.stop("scheduler") == 0, cluster.log("scheduler")

    def test_nginx_refuses_a_body_over_the_limit_in_the_error_shape(self, cluster):
        context = ssl.create_default_context(cafile=str(cluster.ca_file))
        conn = http.client.HTTPSConnection("localhost", cluster.https_port, context=context, timeout=30)
        conn.putrequest("POST", "/api/v1/photos/")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(4 * 1024 * 1024))  # the cluster's PHOTO_MAX_BYTES is 2 MiB
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert response.status == 413
        assert response.getheader("Content-Type").startswith("application/json")
        assert b'"code":"too_large"' in body and b"2097152 bytes" in body
        assert_security_headers(dict(response.getheaders()), "413")

    def test_what_nginx_answers_itself_carries_the_sites_security_headers(self, cluster):
        """Static files and nginx's own 405 carry HSTS, nosniff and a policy, as the application's answers do."""
        phone = Phone(cluster)
        css = "/static/" + str(next(cluster.static_root.rglob("*.css")).relative_to(cluster.static_root))
        static = phone.get(css)
        assert static.status_code == 200
        assert_security_headers(static.headers, "static")
        not_allowed = phone.post(css, data=b"x")
        assert not_allowed.status_code == 405 and not_allowed.json()["error"]["code"] == "method_not_allowed"
        assert_security_headers(not_allowed.headers, "405")
        # The application's own answers get nothing from nginx: one policy, the site's (a second would narrow it).
        page = phone.get("/")
        assert page.status_code == 200 and "default-src 'none'" not in page.headers["Content-Security-Policy"]
        assert page.headers["X-Content-Type-Options"] == "nosniff" and "Strict-Transport-Security" in page.headers

    def test_the_http_redirect_goes_to_the_configured_name_whatever_host_a_client_sends(self, cluster):
        for host in ("localhost", "evil.example", f"evil.example:{cluster.https_port}"):
            conn = http.client.HTTPConnection("127.0.0.1", cluster.http_port, timeout=30)
            conn.request("GET", "/signin/?next=/me/", headers={"Host": host})
            response = conn.getresponse()
            response.read()
            conn.close()
            assert response.status == 301, host
            assert response.getheader("Location") == f"https://localhost:{cluster.https_port}/signin/?next=/me/", host

    def test_plain_http_answers_both_health_checks_and_redirects_the_rest_to_https(self, cluster):
        """A load balancer probing nginx's port 80 gets the readiness and the liveness answer, not a redirect."""
        answers = {}
        for path in ("/healthz", "/healthz/live", "/api/v1/labels/"):
            conn = http.client.HTTPConnection("127.0.0.1", cluster.http_port, timeout=30)
            conn.request("GET", path, headers={"Host": "localhost"})
            response = conn.getresponse()
            answers[path] = (response.status, response.getheader("Location"), response.read())
            conn.close()
        assert answers["/healthz"][0] == 200 and b'"status": "ok"' in answers["/healthz"][2]
        assert answers["/healthz/live"][:2] == (200, None)
        assert answers["/api/v1/labels/"][:2] == (301, f"https://localhost:{cluster.https_port}/api/v1/labels/")

    def test_a_web_host_keeps_an_idle_connection_longer_than_nginx_reuses_it(self, cluster):
        """nginx keeps connections to the web hosts open between requests (upstream keepalive, reused for up
        to UPSTREAM_KEEPALIVE_SECONDS). Were gunicorn to close an idle one first (its default: after 2 s), a
        POST sent on it at that moment would get nginx's 502, which the site answers as 503."""
        from deploy.nginx_site import UPSTREAM_KEEPALIVE_SECONDS

        conn = http.client.HTTPConnection("127.0.0.1", cluster.web_ports[0], timeout=30)
        headers = {"Host": "localhost", "X-Forwarded-Proto": "https"}
        for _ in range(2):
            conn.request("GET", "/healthz/live", headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
            time.sleep(3)  # past gunicorn's default keep-alive
        conn.close()
        gunicorn = runpy.run_path(str(Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"))
        assert gunicorn["keepalive"] > UPSTREAM_KEEPALIVE_SECONDS

    def test_a_forged_x_forwarded_for_does_not_escape_a_throttle_through_nginx(self, cluster, people):
        anonymous = Phone(cluster)
        statuses = []
        for i in range(SIGNUP_RATE + 2):
            forged = {"X-Forwarded-For": f"203.0.113.{i + 1}"}
            statuses.append(anonymous.post("/api/v1/volunteers/", json={}, headers=forged).status_code)
        # One address, whatever each request claimed: at most SIGNUP_RATE sign-ups an hour, the people
        # fixture's sign-up among them; once refused, refused until the hour is over.
        assert set(statuses) <= {400, 429}, statuses
        assert statuses.count(429) >= len(statuses) - SIGNUP_RATE + 1, statuses
        first = statuses.index(429)
        assert statuses[first:] == [429] * (len(statuses) - first), statuses

    def test_killing_a_web_host_during_uploads_loses_no_upload_that_got_a_2xx(self, cluster, people):
        phone, _ = people
        results: list[tuple[int, dict]] = []
        lock = threading.Lock()
        killed = threading.Event()

        def uploader(worker: int):
            for i in range(8):
                data = class_image("red-disc", 10_000 + worker * 100 + i, size=160)
                try:
                    response = phone.upload(data, "red-disc")
                    outcome = (response.status_code, response.json())  # every answer, 2xx or not, is JSON
                except requests.RequestException as exc:
                    outcome = (0, {"exception": repr(exc)})
                with lock:
                    results.append(outcome)
                    if len(results) == 6 and not killed.is_set():
                        killed.set()
                        cluster.kill_host("web0")  # mid-stream: other uploads are in flight on both hosts

        threads = [threading.Thread(target=uploader, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert killed.is_set()
        accepted = [body["id"] for status, body in results if 200 <= status < 300]
        others = [status for status, _ in results if not 200 <= status < 300]
        assert len(accepted) >= 16, results  # the surviving host took the rest
        # Only uploads in flight on the dead host failed, visibly, in the error shape that says "retry".
        assert set(others) <= {503}, results
        assert all(body["error"]["code"] == "unavailable" for status, body in results if status == 503), results
        for photo_id in accepted:
            assert phone.get(f"/api/v1/photos/{photo_id}/").status_code == 200, photo_id
        rows = dict((pid, keys) for pid, *keys in cluster.sql(
            "SELECT id, original_key, training_key, thumbnail_key FROM collector_photo WHERE id = ANY(%s)", accepted))
        assert sorted(rows) == sorted(accepted)
        stored = cluster.s3_keys()
        missing = [(pid, key) for pid, keys in rows.items() for key in keys if key not in stored]
        assert not missing, missing

        # With every web host gone, nginx still serves the static files itself; the app is nginx's 502,
        # which the site answers as 503 in the error shape.
        cluster.kill_host("web1")
        css = next(p for p in cluster.static_root.rglob("*.css"))
        static = phone.get("/static/" + str(css.relative_to(cluster.static_root)))
        assert static.status_code == 200 and static.content == css.read_bytes()
        assert phone.get("/healthz").status_code == 503
        unavailable = phone.get("/api/v1/labels/")
        assert unavailable.status_code == 503 and unavailable.json()["error"]["code"] == "unavailable"
        assert unavailable.headers["Retry-After"] == "5"
        assert_security_headers(unavailable.headers, "503")
