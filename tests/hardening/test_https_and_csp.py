"""HTTPS behind a TLS proxy (HSTS, redirect with the health checks exempt, secure cookies) and the CSP header."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import make_label, make_reviewer, make_volunteer

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_PRELOAD", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
         "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")


def settings_from_env(**env) -> dict:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("DJANGO_SETTINGS_MODULE", "BEHIND_TLS_PROXY", "SITE_URL", "HSTS_SECONDS", "DEBUG",
                                "SECURE_COOKIES", "HSTS_PRELOAD")}
    environment.update(SECRET_KEY="x", **env)
    code = f"import config.settings as s; print(repr({{n: getattr(s, n, None) for n in {NAMES!r}}}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=60)
    if done.returncode:
        return {"error": done.stderr}
    return eval(done.stdout)  # noqa: S307 (our own repr of a dict of plain values)


class TestHttpsSettings:
    def test_behind_a_tls_proxy_with_an_https_site(self):
        values = settings_from_env(BEHIND_TLS_PROXY="true", SITE_URL="https://crowdlens.example.org")
        assert values == {
            "SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 365 * 24 * 3600, "SECURE_HSTS_PRELOAD": False,
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": False, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
            "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True,
        }

    def test_hsts_max_age_comes_from_the_environment(self):
        values = settings_from_env(BEHIND_TLS_PROXY="true", SITE_URL="https://x.example.org", HSTS_SECONDS="600")
        assert values["SECURE_HSTS_SECONDS"] == 600

    def test_off_by_default(self):
        values = settings_from_env()
        assert values["SECURE_SSL_REDIRECT"] is False and values["SECURE_HSTS_SECONDS"] == 0
        assert values["SECURE_PROXY_SSL_HEADER"] is None and values["SESSION_COOKIE_SECURE"] is False

    def test_an_http_site_gets_no_hsts_or_redirect(self):
        values = settings_from_env(BEHIND_TLS_PROXY="true", SITE_URL="http://intranet.local")
        assert values["SECURE_SSL_REDIRECT"] is False and values["SECURE_HSTS_SECONDS"] == 0

    @pytest.mark.parametrize("value", ["-1", "a year"])
    def test_a_bad_max_age_is_refused_naming_the_variable(self, value):
        values = settings_from_env(BEHIND_TLS_PROXY="true", SITE_URL="https://x.example.org", HSTS_SECONDS=value)
        assert "HSTS_SECONDS" in values["error"]


@pytest.fixture
def tls_proxy(settings):
    """The settings config/settings.py makes from BEHIND_TLS_PROXY=true and an https SITE_URL."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SITE_URL = "https://testserver"


@pytest.mark.django_db
class TestBehindTlsProxy:
    def test_plain_http_is_redirected_to_https(self, tls_proxy):
        response = Client().get("/leaderboard/?period=all")
        assert response.status_code == 301 and response["Location"] == "https://testserver/leaderboard/?period=all"

    @pytest.mark.parametrize("path", ["/healthz", "/healthz/live"])
    def test_health_checks_answer_on_plain_http(self, tls_proxy, path):
        assert Client().get(path).status_code == 200

    def test_https_pages_carry_hsts_without_preload(self, tls_proxy):
        response = Client().get("/leaderboard/", HTTP_X_FORWARDED_PROTO="https")
        assert response.status_code == 200
        assert response["Strict-Transport-Security"] == "max-age=31536000"

    def test_cookies_are_secure(self, tls_proxy):
        make_volunteer("alice", password="alice-password-1")
        client = Client()
        client.get("/signin/", HTTP_X_FORWARDED_PROTO="https")
        assert client.cookies["csrftoken"]["secure"]
        client.post("/signin/", {"username": "alice", "password": "alice-password-1"}, HTTP_X_FORWARDED_PROTO="https")
        assert client.cookies["sessionid"]["secure"]

    def test_without_the_proxy_setting_nothing_changes(self):
        response = Client().get("/leaderboard/", HTTP_X_FORWARDED_PROTO="https")
        assert response.status_code == 200 and "Strict-Transport-Security" not in response


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def scripts_obey(html: str, nonce: str | None) -> list[str]:
    """<script> tags that the policy would block: inline ones without the response's nonce."""
    blocked = []
    for tag in re.findall(r"<script\b[^>]*>", html):
        if "src=" in tag:
            continue
        if not nonce or f'nonce="{nonce}"' not in tag:
            blocked.append(tag)
    return blocked


@pytest.mark.django_db
class TestContentSecurityPolicy:
    @pytest.mark.parametrize("path", ["/", "/leaderboard/", "/gallery/", "/challenges/", "/signin/", "/signup/",
                                      "/newsletter/", "/admin/login/", "/api/docs/", "/api/v1/labels/", "/healthz"])
    def test_every_response_has_the_policy(self, client, path):
        response = client.get(path)
        assert response.status_code == 200
        directives = policy(response)
        assert directives["default-src"] == ["'self'"] and directives["object-src"] == ["'none'"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
        if response["Content-Type"].startswith("text/html"):
            assert scripts_obey(response.content.decode(), _nonce(directives)) == []

    def test_the_camera_page_script_is_a_static_file_the_policy_allows(self):
        make_label("mug")
        volunteer = make_volunteer("camera-user", password="camera-password-1")
        client = Client()
        client.force_login(volunteer.user)
        response = client.get("/capture/")
        assert response.status_code == 200
        html = response.content.decode()
        assert re.search(r'<script src="/static/js/capture\.js"', html)
        assert scripts_obey(html, _nonce(policy(response))) == []
        assert "blob:" in policy(response)["img-src"]  # the preview of the chosen photo

    def test_the_admin_review_form_script_carries_the_nonce(self, settings):
        from tests.factories import make_photo

        photo = make_photo()
        staff_client = Client()
        staff_client.force_login(make_reviewer())
        response = staff_client.get(f"/admin/collector/photo/{photo.pk}/change/")
        assert response.status_code == 200
        nonce = _nonce(policy(response))
        assert nonce and f'<script nonce="{nonce}">' in response.content.decode()
        assert scripts_obey(response.content.decode(), nonce) == []

    def test_only_the_admin_may_use_inline_styles(self, client):
        assert "'unsafe-inline'" not in policy(client.get("/leaderboard/"))["style-src"]
        assert "'unsafe-inline'" not in policy(client.get("/signin/"))["style-src"]
        admin = policy(client.get("/admin/login/"))
        assert admin["style-src"] == ["'self'", "'unsafe-inline'"]
        assert "'unsafe-inline'" not in admin["script-src"]

    def test_the_api_docs_script_is_served_as_a_file(self, client):
        page = client.get("/api/docs/")
        src = re.findall(r'<script src="([^"]+script[^"]*)"', page.content.decode())
        assert src, "the Swagger set-up script is not a separate file"
        script = client.get(src[0].replace("&amp;", "&"))
        assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")


def _nonce(directives) -> str | None:
    for source in directives.get("script-src", []):
        if source.startswith("'nonce-"):
            return source[len("'nonce-"):-1]
    return None
