"""Client identity: X-Forwarded-For is believed only as far as TRUSTED_PROXY_COUNT says."""

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from config.client_ip import client_ip
from collector.throttles import UploadThrottle
from config.throttling import ScopedRateThrottle

ROOT = Path(__file__).resolve().parents[2]


def forged() -> str:
    return ".".join(str(random.randint(1, 254)) for _ in range(4))


@pytest.fixture
def proxies(settings):
    """Set how many proxies are trusted, for config.client_ip and DRF's throttles alike (as settings.py does)."""

    def trust(count: int):
        settings.TRUSTED_PROXY_COUNT = count
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": count}

    return trust


CASES = [
    # (trusted proxies, X-Forwarded-For or None, REMOTE_ADDR, the client)
    (0, None, "203.0.113.9", "203.0.113.9"),
    (0, "1.2.3.4", "203.0.113.9", "203.0.113.9"),
    (0, "1.2.3.4, 5.6.7.8", "203.0.113.9", "203.0.113.9"),
    (1, None, "10.0.0.1", "10.0.0.1"),
    (1, "198.51.100.7", "10.0.0.1", "198.51.100.7"),
    (1, "6.6.6.6, 198.51.100.7", "10.0.0.1", "198.51.100.7"),
    (1, "6.6.6.6,7.7.7.7 ,  198.51.100.7", "10.0.0.1", "198.51.100.7"),
    (2, "6.6.6.6, 198.51.100.7, 10.0.0.2", "10.0.0.1", "198.51.100.7"),
    (2, "198.51.100.7", "10.0.0.1", "198.51.100.7"),  # shorter than the proxies: its leftmost entry
    (3, "2001:db8::1, 10.0.0.3, 10.0.0.2", "10.0.0.1", "2001:db8::1"),
    # Not an address where one is expected: not believed, the nearest proxy is the client.
    (1, "not-an-address", "10.0.0.1", "10.0.0.1"),
    (1, "198.51.100.7, unknown", "10.0.0.1", "10.0.0.1"),
    (1, "198.51.100.7:4711", "10.0.0.1", "10.0.0.1"),
    (2, "evil.example, 10.0.0.2", "10.0.0.1", "10.0.0.1"),
    (1, "2001:DB8:0:0::7", "10.0.0.1", "2001:db8::7"),  # written one way, whatever the spelling
]


class TestClientIp:
    @pytest.mark.parametrize("trusted, xff, remote, expected", CASES)
    def test_it_takes_the_address_that_many_hops_from_the_right(self, proxies, trusted, xff, remote, expected):
        proxies(trusted)
        extra = {"REMOTE_ADDR": remote, **({"HTTP_X_FORWARDED_FOR": xff} if xff is not None else {})}
        request = RequestFactory().get("/", **extra)
        assert client_ip(request) == expected
        # The throttles key on the same address.
        assert ScopedRateThrottle().get_ident(request) == UploadThrottle().get_ident(request) == expected


def _settings_value(expr: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("TRUSTED_PROXY_COUNT", "DJANGO_SETTINGS_MODULE")}
    environment.update(SECRET_KEY="x", **env)
    return subprocess.run([sys.executable, "-c", f"import config.settings as s; print({expr})"], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=60)


class TestTrustedProxyCountSetting:
    def test_it_defaults_to_no_proxy(self):
        done = _settings_value("s.TRUSTED_PROXY_COUNT, s.REST_FRAMEWORK['NUM_PROXIES']")
        assert done.stdout.strip() == "0 0", done.stderr

    def test_drf_follows_it(self):
        done = _settings_value("s.TRUSTED_PROXY_COUNT, s.REST_FRAMEWORK['NUM_PROXIES']", TRUSTED_PROXY_COUNT="2")
        assert done.stdout.strip() == "2 2", done.stderr

    @pytest.mark.parametrize("value", ["-1", "two", "1.5"])
    def test_a_bad_value_is_refused_naming_the_variable(self, value):
        done = _settings_value("s.TRUSTED_PROXY_COUNT", TRUSTED_PROXY_COUNT=value)
        assert done.returncode != 0
        assert "ImproperlyConfigured" in done.stderr and "TRUSTED_PROXY_COUNT" in done.stderr


# Each anonymous endpoint with a per-client limit: (throttle scope, method + path, form or JSON body).
ENDPOINTS = {
    "token": ("anon_signup", "/api/v1/auth/token/", {"username": "nobody", "password": "wrong-password"}, "json"),
    "sign-up API": ("anon_signup", "/api/v1/volunteers/", {"display_name": "x"}, "json"),
    "sign-up page": ("anon_signup", "/signup/", {"display_name": "x"}, "form"),
    "sign-in page": ("anon_signup", "/signin/", {"username": "nobody", "password": "wrong-password"}, "form"),
    "newsletter API": ("newsletter_subscribe", "/api/v1/newsletter/subscribe/", {"email": "a@example.org"}, "json"),
    "newsletter page": ("newsletter_subscribe", "/newsletter/", {"email": "a@example.org"}, "form"),
}


def _post(path, data, kind, **extra):
    if kind == "json":
        return APIClient().post(path, data, format="json", **extra)
    return Client().post(path, data, **extra)


@pytest.mark.django_db
class TestForgedForwardedForDoesNotEscapeThrottles:
    @pytest.mark.parametrize("name", list(ENDPOINTS))
    def test_without_a_trusted_proxy(self, name, monkeypatch, mailoutbox):
        scope, path, data, kind = ENDPOINTS[name]
        monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, scope, "3/hour")
        statuses = [_post(path, data, kind, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=forged()).status_code
                    for _ in range(6)]
        assert all(s != 429 for s in statuses[:3]) and statuses[3:] == [429, 429, 429], statuses
        # Another client (another socket address) still gets in.
        assert _post(path, data, kind, REMOTE_ADDR="203.0.113.10").status_code != 429

    @pytest.mark.parametrize("name", list(ENDPOINTS))
    def test_behind_one_trusted_proxy(self, name, proxies, monkeypatch, mailoutbox):
        scope, path, data, kind = ENDPOINTS[name]
        proxies(1)
        monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, scope, "3/hour")
        # The client forges the start of the header; the proxy (10.0.0.1) appends the address it saw.
        statuses = [_post(path, data, kind, REMOTE_ADDR="10.0.0.1",
                          HTTP_X_FORWARDED_FOR=f"{forged()}, {forged()}, 198.51.100.7").status_code for _ in range(6)]
        assert all(s != 429 for s in statuses[:3]) and statuses[3:] == [429, 429, 429], statuses
        # Another client behind the same proxy is counted on its own.
        other = _post(path, data, kind, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.8")
        assert other.status_code != 429

    def test_the_api_answers_in_the_error_shape(self, monkeypatch):
        monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "anon_signup", "1/hour")
        _post("/api/v1/auth/token/", {"username": "a", "password": "b"}, "json", HTTP_X_FORWARDED_FOR=forged())
        response = _post("/api/v1/auth/token/", {"username": "a", "password": "b"}, "json", HTTP_X_FORWARDED_FOR=forged())
        assert response.status_code == 429 and response.json()["error"]["code"] == "throttled"
