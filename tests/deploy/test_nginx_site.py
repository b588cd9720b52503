"""deploy/nginx_site.py: the nginx site agrees with the settings the web hosts run with."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
EXAMPLE_ARGS = ["--upstream", "10.0.0.11:8000", "--upstream", "10.0.0.12:8000", "--static-root", "/srv/crowdlens/static",
                "--proxy-headers", "/srv/crowdlens/app/deploy/nginx/proxy_headers.conf"]


def render(*args: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PHOTO_", "STATIC_", "DJANGO_SETTINGS", "TRUSTED_PROXY"))}
    result = run_renderer(*args, base=base, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_renderer(*args: str, base: dict, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "deploy/nginx_site.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "SECRET_KEY": "x", "SITE_URL": "https://crowdlens.example.org",
                               "TRUSTED_PROXY_COUNT": "1", **env},
                          timeout=120)


def directive(conf: str, name: str) -> str:
    return re.search(rf"^\s*{name} ([^;]+);", conf, re.MULTILINE).group(1)


class TestNginxSite:
    def test_the_shipped_example_is_the_rendering_of_the_default_settings(self):
        shipped = (ROOT / "deploy/nginx/crowdlens.conf.example").read_text()
        assert render(*EXAMPLE_ARGS) == shipped, "render it again: python deploy/nginx_site.py " + " ".join(EXAMPLE_ARGS)
        assert directive(shipped, "client_max_body_size") == str(25 * 1024 * 1024 + 1024 * 1024)

    def test_the_body_limit_follows_photo_max_bytes(self):
        conf = render(PHOTO_MAX_BYTES=str(4 * 1024 * 1024))
        assert directive(conf, "client_max_body_size") == str(5 * 1024 * 1024)  # = REQUEST_MAX_BYTES
        assert "larger than the limit of 4194304 bytes" in conf
        assert "server 127.0.0.1:8000 " in conf and "server_name crowdlens.example.org;" in conf

    def test_nginx_forwards_the_address_it_saw_and_the_scheme(self):
        headers = (ROOT / "deploy/nginx/proxy_headers.conf").read_text()
        # Appended, never replaced: with TRUSTED_PROXY_COUNT=1 the web hosts take the right-most address.
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in headers
        assert "proxy_set_header X-Forwarded-Proto $scheme;" in headers

    def test_it_refuses_web_hosts_that_trust_no_proxy(self):
        """nginx in front and TRUSTED_PROXY_COUNT=0: every client would be nginx's address to the web hosts."""
        done = run_renderer(base={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
                            TRUSTED_PROXY_COUNT="0")
        assert done.returncode == 2 and done.stdout == ""
        assert "TRUSTED_PROXY_COUNT is 0" in done.stderr and "Set TRUSTED_PROXY_COUNT=1" in done.stderr

    def test_it_says_which_proxy_chain_it_was_rendered_for(self):
        assert "Rendered for TRUSTED_PROXY_COUNT=1: nginx is the only proxy" in render()
        two = render(TRUSTED_PROXY_COUNT="2")
        assert "Rendered for TRUSTED_PROXY_COUNT=2: 1 more in front of nginx" in two
        assert "take the address 2 from the right" in two

    def test_plain_http_passes_both_health_checks_and_redirects_the_rest(self):
        conf = render()
        plain = conf[conf.index("listen 80;"):conf.index("listen 443 ssl")]
        health = re.search(r"location ~ (\S+) \{\s*proxy_pass http://crowdlens_web;", plain).group(1)
        assert [bool(re.search(health, p)) for p in ("/healthz", "/healthz/live", "/healthz/x", "/healthzz", "/")] == [
            True, True, False, False, False]
        assert "return 301 https://" in plain

    def test_the_redirect_to_https_goes_to_the_configured_name_never_the_clients_host(self):
        plain = render()
        plain = plain[plain.index("listen 80;"):plain.index("listen 443 ssl")]
        assert "return 301 https://crowdlens.example.org$request_uri;" in plain
        assert "$host" not in plain.split("location / {")[1], "a client's Host header would choose the redirect target"
        assert "return 301 https://photos.example.net:8443$request_uri;" in render("--server-name", "photos.example.net",
                                                                                   "--https-port", "8443")

    def test_what_nginx_answers_itself_carries_the_security_headers(self):
        conf = render()
        tls = conf[conf.index("listen 443 ssl"):]
        own = {name: re.search(rf"location {re.escape(name)} \{{(.*?)\n    \}}", tls, re.DOTALL).group(1)
               for name in ("@too_large", "@unavailable", "@not_allowed", "/static/")}
        for name, block in own.items():
            assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in block, name
            assert 'add_header X-Content-Type-Options "nosniff" always;' in block, name
            assert 'add_header X-Frame-Options "DENY" always;' in block, name
            assert "add_header Content-Security-Policy \"default-src 'none'; frame-ancestors 'none'\" always;" in block, name
        # Proxied answers carry the application's own headers only: a second CSP from nginx would narrow its policy.
        proxied = re.search(r"location / \{(.*?)\n    \}", tls, re.DOTALL).group(1)
        assert "add_header" not in proxied
        assert "error_page 405 @not_allowed;" in tls and '"code":"method_not_allowed"' in own["@not_allowed"]

    def test_hsts_follows_the_sites_settings(self):
        conf = render(HSTS_SECONDS="600", HSTS_INCLUDE_SUBDOMAINS="true", HSTS_PRELOAD="true")
        assert 'add_header Strict-Transport-Security "max-age=600; includeSubDomains; preload" always;' in conf
        assert "Strict-Transport-Security" not in render(HSTS_SECONDS="0")

    @pytest.mark.skipif(not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists(),
                        reason="Debian's nginx is not installed (deploy/ensure-test-tools.sh installs it)")
    def test_nginx_accepts_the_rendered_site(self, tmp_path):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                       check=True, capture_output=True, timeout=60)
        site = tmp_path / "site.conf"
        site.write_text(render("--certificate", str(tmp_path / "cert.pem"), "--certificate-key", str(tmp_path / "key.pem"),
                               "--static-root", str(tmp_path)))
        (tmp_path / "nginx.conf").write_text(f"events {{}}\nhttp {{ include /etc/nginx/mime.types; include {site}; }}\n")
        result = subprocess.run(["/usr/sbin/nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                                 "-e", str(tmp_path / "error.log")], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "syntax is ok" in result.stderr, result.stderr
