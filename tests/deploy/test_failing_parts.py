"""Parts that fail under a running installation (deploy/localcluster.py: its own PostgreSQL and Redis, moto's
S3, a gunicorn web host behind nginx, the scheduler and a trainworker, each a separate process): the site
answers 503 "retry later" while a part is down, says which in its readiness, and every process carries on by
itself once the part is back. Everything goes through nginx over TLS, as a phone's or a browser's requests do.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.deploy.test_cluster import NEEDS_NGINX, Phone, skip_without_own_services

pytestmark = [pytest.mark.slow, NEEDS_NGINX]

HEARTBEAT_SECONDS = 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from deploy.localcluster import LocalCluster

    skip_without_own_services()
    env = {"PROCESS_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS), "REDIS_TIMEOUT": "1"}
    with LocalCluster(tmp_path_factory.mktemp("failing"), web_hosts=1, services="own", env=env) as cluster:
        try:
            cluster.start_web()
            yield cluster
        except BaseException:
            print(cluster.logs())
            raise


def sign_up(cluster, name: str) -> Phone:
    response = Phone(cluster).post("/api/v1/volunteers/", json={"display_name": name, "password": f"a-long-{name}-password",
                                                                "consent_training": True})
    assert response.status_code == 201, response.text
    return Phone(cluster, response.json()["token"])


def signed_in_browser(cluster, name: str) -> Phone:
    """A browser signed in through the sign-in page: its session lives in the database."""
    browser = Phone(cluster)
    form = browser.get("/signin/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    done = browser.post("/signin/", data={"username": name, "password": f"a-long-{name}-password",
                                          "csrfmiddlewaretoken": token},
                        headers={"Referer": cluster.url("/signin/")}, allow_redirects=False)
    assert done.status_code == 302, done.text[:2000]
    assert browser.get("/me/").status_code == 200
    return browser


def assert_unavailable(response, code: str):
    assert response.status_code == 503, response.text[:2000]
    assert response.json()["error"]["code"] == code
    assert int(response.headers["Retry-After"]) > 0


def beats(cluster) -> dict[str, object]:
    return dict(cluster.sql("SELECT kind, max(beat_at) FROM training_processheartbeat WHERE stopped_at IS NULL "
                            "GROUP BY kind"))


class TestFailingParts:
    def test_redis_down_throttled_writes_answer_503_and_readiness_names_the_cache(self, cluster):
        phone = sign_up(cluster, "rosa")
        anonymous = Phone(cluster)
        cluster.stop_redis()
        try:
            signup = anonymous.post("/api/v1/volunteers/", json={"display_name": "sam", "password": "a-long-sam-password",
                                                                 "consent_training": True})
            assert_unavailable(signup, "unavailable")
            token = anonymous.post("/api/v1/auth/token/", json={"username": "rosa", "password": "a-long-rosa-password"})
            assert_unavailable(token, "unavailable")
            upload = phone.post("/api/v1/photos/", files={"image": ("p.jpg", b"\xff\xd8\xff", "image/jpeg")},
                                data={"label": "none"})
            assert_unavailable(upload, "unavailable")
            subscribe = anonymous.post("/api/v1/newsletter/subscribe/", json={"email": "sam@example.org"})
            assert_unavailable(subscribe, "unavailable")
            ready = anonymous.get("/healthz")
            assert ready.status_code == 503 and ready.json()["failed"] == ["cache"]
            assert cluster.sql("SELECT count(*) FROM collector_volunteer WHERE display_name = 'sam'") == [(0,)]
        finally:
            cluster.start_redis()
        # Back: the same sign-up goes through, nothing to restart.
        again = anonymous.post("/api/v1/volunteers/", json={"display_name": "sam", "password": "a-long-sam-password",
                                                            "consent_training": True})
        assert again.status_code == 201, again.text
        assert anonymous.get("/healthz").status_code == 200

    def test_postgres_down_pages_answer_try_again_soon_and_every_process_reconnects_when_it_is_back(self, cluster):
        phone = sign_up(cluster, "dora")
        browser = signed_in_browser(cluster, "dora")
        cluster.start_scheduler()
        cluster.start_trainworker()  # loads TensorFlow before its first beat
        from deploy.localcluster import wait_for

        wait_for(lambda: set(beats(cluster)) == {"scheduler", "trainworker"}, timeout=240, what="both heartbeats",
                 interval=1)

        cluster.stop_postgres()
        try:
            page = browser.get("/me/")
            assert page.status_code == 503, page.text[:2000]
            assert page.headers["Content-Type"].startswith("text/html") and "Try again soon" in page.text
            assert int(page.headers["Retry-After"]) > 0
            assert_unavailable(phone.get("/api/v1/me/"), "database_unavailable")
            ready = phone.get("/healthz")
            assert ready.status_code == 503 and ready.json()["failed"] == ["database"]
            time.sleep(5 * HEARTBEAT_SECONDS)  # several beats of each process fail meanwhile
        finally:
            cluster.start_postgres()
        back = cluster.sql("SELECT now()")[0][0]

        # Each long-running process finds the database again by itself: both heartbeats move on.
        wait_for(lambda: all(at > back for at in beats(cluster).values()) and len(beats(cluster)) == 2,
                 timeout=60, what="heartbeats after PostgreSQL came back", interval=0.5)
        for name in ("scheduler", "trainworker"):
            # Each loop (the heartbeat; the trainworker's poll for runs) logs the outage once as it starts and once
            # as it ends, not at every beat in between. A loop's end is logged at its next turn after PostgreSQL
            # came back (the poll's turn can come after the heartbeat's): wait for it, then count.
            def outage_ends_logged(name=name) -> bool:
                log = cluster.log(name, tail=200_000)
                return log.count("works again after") >= log.count("retrying until the database answers")

            wait_for(outage_ends_logged, timeout=120, what=f"{name}'s loops logging that the database works again",
                     interval=0.5)
            log = cluster.log(name, tail=200_000)
            assert "The heartbeat of" in log and "works again after" in log, log[-5000:]
            failed, recovered = log.count("retrying until the database answers"), log.count("works again after")
            assert 1 <= failed == recovered <= 2, log[-5000:]
        assert browser.get("/me/").status_code == 200
        assert phone.get("/api/v1/me/").status_code == 200
        assert phone.get("/healthz").status_code == 200
        assert cluster.stop("trainworker") == 0, cluster.log("trainworker")
        assert cluster.stop("scheduler") == 0, cluster.log("scheduler")
