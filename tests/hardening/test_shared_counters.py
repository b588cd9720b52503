"""Throttle counters are shared by every worker process: the database cache by default, Redis with REDIS_URL.

Each "worker" here is a separate Python process with the production settings
(config.settings), as gunicorn's workers are.
"""

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(var_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "DEBUG", "TRUSTED_PROXY_COUNT")}
    env.update(SECRET_KEY="shared-counters-test", CROWDLENS_VAR_DIR=str(var_dir), SIGNUP_RATE="3/hour",
               DATABASE_URL=f"sqlite:///{var_dir / 'db.sqlite3'}", **extra)
    return env


def _run(args, env) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _worker(env, requests: int) -> list[int]:
    return [int(s) for s in _run(["-m", "tests.hardening.throttle_client", str(requests)], env).split()]


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    """A migrated SQLite installation, as `make migrate` leaves it."""
    var_dir = tmp_path_factory.mktemp("installation")
    _run(["manage.py", "migrate", "--noinput", "-v", "0"], _env(var_dir))
    return var_dir


def redis_listening() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
        return True
    except OSError:
        return False


class TestDatabaseCache:
    def test_migrate_creates_the_cache_table(self, installation):
        with sqlite3.connect(installation / "db.sqlite3") as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "crowdlens_cache" in tables

    def test_two_workers_share_one_count(self, installation):
        env = _env(installation)
        with sqlite3.connect(installation / "db.sqlite3") as db:
            db.execute("DELETE FROM crowdlens_cache")
        first = _worker(env, 2)
        second = _worker(env, 2)
        third = _worker(env, 1)
        assert first == [400, 400]
        assert second == [400, 429]  # 3/hour across both processes, not per process
        assert third == [429]


@pytest.mark.skipif(not redis_listening(), reason="no Redis on 127.0.0.1:6379 (the test set-up starts one)")
class TestRedisCache:
    def test_two_workers_share_one_count(self, installation):
        env = _env(installation, REDIS_URL="redis://127.0.0.1:6379/0", CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}")
        assert _worker(env, 2) == [400, 400]
        assert _worker(env, 2) == [400, 429]
        # Nothing went to the database cache: Redis held the count.
        with sqlite3.connect(installation / "db.sqlite3") as db:
            assert db.execute("SELECT COUNT(*) FROM crowdlens_cache WHERE cache_key LIKE ?",
                              (f"{env['CACHE_KEY_PREFIX']}%",)).fetchone()[0] == 0


@pytest.mark.django_db
class TestManyClients:
    def test_a_crowd_of_other_clients_does_not_push_out_a_live_counter(self, monkeypatch, settings):
        from types import SimpleNamespace

        from django.contrib.auth.models import AnonymousUser
        from django.test import RequestFactory
        from rest_framework.throttling import ScopedRateThrottle

        assert settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache")  # the default, as in production
        monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "anon_signup", "1/hour")
        view = SimpleNamespace(throttle_scope="anon_signup")

        def allowed(address: str) -> bool:
            request = RequestFactory().post("/", REMOTE_ADDR=address)
            request.user = AnonymousUser()
            return ScopedRateThrottle().allow_request(request, view)

        assert allowed("1.1.1.1")  # its key sorts first: the first a cull would drop
        assert all(allowed(f"10.0.{i // 250}.{i % 250}") for i in range(400))
        assert not allowed("1.1.1.1")


class _SlowReads:
    """A cache that takes 50 ms to answer a read of a request history: a worker slowed by load, which
    is when two workers serving one client both read the history before either writes it back."""

    def __init__(self, cache):
        self._cache = cache

    def get(self, key, default=None):
        value = self._cache.get(key, default)
        if not key.endswith(":lock"):
            time.sleep(0.05)
        return value

    def __getattr__(self, name):
        return getattr(self._cache, name)


def _burst(cache, requests: int, rate: str) -> list[bool]:
    """``requests`` requests of one client, each on its own thread (worker), released at the same instant."""
    from types import SimpleNamespace

    from django.contrib.auth.models import AnonymousUser
    from django.db import connection
    from django.test import RequestFactory

    from config.throttling import ScopedRateThrottle

    class Throttle(ScopedRateThrottle):
        THROTTLE_RATES = {"burst": rate}

    Throttle.cache = _SlowReads(cache)
    view = SimpleNamespace(throttle_scope="burst")
    barrier, answers = threading.Barrier(requests), []

    def one():
        request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.9")
        request.user = AnonymousUser()
        barrier.wait()
        try:
            answers.append(Throttle().allow_request(request, view))
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


class TestSimultaneousRequests:
    """One client's requests reaching several workers in the same instant: the rate holds exactly."""

    @pytest.mark.skipif(not redis_listening(), reason="no Redis on 127.0.0.1:6379 (the test set-up starts one)")
    def test_a_burst_gets_exactly_the_rate_with_redis(self):
        from django.core.cache.backends.redis import RedisCache

        cache = RedisCache("redis://127.0.0.1:6379/0", {"KEY_PREFIX": f"burst-{uuid.uuid4().hex}"})
        answers = _burst(cache, 8, "3/hour")
        assert len(answers) == 8 and answers.count(True) == 3

    @pytest.mark.django_db(transaction=True)
    def test_a_burst_gets_exactly_the_rate_with_the_database_cache(self):
        from django.core.cache import caches
        from django.db import connection

        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            pytest.skip("shared-cache in-memory SQLite locks tables between threads; run with "
                        "DATABASE_URL=postgres://... (or a file database)")
        cache = caches["default"]
        assert type(cache).__name__ == "DatabaseCache"
        answers = _burst(cache, 8, "3/hour")
        assert len(answers) == 8 and answers.count(True) == 3

    @pytest.mark.skipif(not redis_listening(), reason="no Redis on 127.0.0.1:6379 (the test set-up starts one)")
    def test_a_lock_left_by_a_dead_worker_delays_the_next_request_but_does_not_refuse_it_with_redis(self):
        from django.core.cache.backends.redis import RedisCache

        _after_a_dead_workers_lock(RedisCache("redis://127.0.0.1:6379/0", {"KEY_PREFIX": f"orphan-{uuid.uuid4().hex}"}))

    @pytest.mark.django_db(transaction=True)
    def test_a_lock_left_by_a_dead_worker_delays_the_next_request_but_does_not_refuse_it_with_the_database_cache(
            self):
        from django.core.cache import caches

        _after_a_dead_workers_lock(caches["default"])  # expiry kept in whole seconds: the lock lasts 1-2 s


def _after_a_dead_workers_lock(cache):
    """A web host killed while one of its workers decided (it holds the client's lock, and never lets go):
    the client's next request waits for the lock to expire and is decided, not answered 429."""
    from types import SimpleNamespace

    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    from config.client_ip import client_ip
    from config.throttling import LOCK_SECONDS, WAIT_SECONDS, ScopedRateThrottle

    class Throttle(ScopedRateThrottle):
        THROTTLE_RATES = {"orphan": "100/hour"}

    Throttle.cache = cache
    view = SimpleNamespace(throttle_scope="orphan")
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.9")
    request.user = AnonymousUser()
    probe = Throttle()
    probe.scope = view.throttle_scope  # as allow_request sets it, before it asks for the key
    key = probe.get_cache_key(request, view)
    assert key == f"throttle_orphan_{client_ip(request)}"
    for _ in range(3):  # taken at different fractions of a second
        assert Throttle.cache.add(f"{key}:lock", "the dead worker's", LOCK_SECONDS)  # never released
        started = time.monotonic()
        assert Throttle().allow_request(request, view) is True
        assert 0.1 < time.monotonic() - started < WAIT_SECONDS  # it did wait for the dead worker's lock
        time.sleep(0.3)
