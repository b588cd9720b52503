"""Render the nginx site for Crowdlens from deploy/nginx/crowdlens.conf.template and the settings.

    set -a; . /etc/crowdlens.env; set +a
    .venv/bin/python deploy/nginx_site.py --upstream 10.0.0.11:8000 --upstream 10.0.0.12:8000 \\
        > /etc/nginx/sites-available/crowdlens

The upload limit comes from the settings the web hosts run with (PHOTO_MAX_BYTES
and REQUEST_MAX_BYTES), so nginx and Django refuse the same bodies; render again
after changing PHOTO_MAX_BYTES. deploy/nginx/crowdlens.conf.example is this
script's output for the defaults (tests/deploy/test_nginx_site.py checks they agree).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx" / "crowdlens.conf.template"
PROXY_HEADERS = HERE / "nginx" / "proxy_headers.conf"
# nginx reuses an idle connection to a web host for this long; gunicorn's keepalive must be longer.
UPSTREAM_KEEPALIVE_SECONDS = 60
UNAVAILABLE = {"error": {"code": "unavailable", "fields": {},
                         "message": "The service is briefly unavailable; nothing may have been recorded. Retry shortly."}}
NOT_ALLOWED = {"error": {"code": "method_not_allowed", "fields": {},
                         "message": "This method is not allowed here: static files answer GET and HEAD."}}
# The policy of what nginx answers itself (JSON errors, static files): none of it is a page to run or frame.
NGINX_CSP = "default-src 'none'; frame-ancestors 'none'"


def security_headers(settings) -> list[tuple[str, str]]:
    """The headers Django's SecurityMiddleware and clickjacking middleware give the application's answers,
    from the same settings, for the answers nginx makes itself (it serves https: HSTS always applies)."""
    headers = []
    if settings.HSTS_SECONDS:
        hsts = f"max-age={settings.HSTS_SECONDS}"
        hsts += "; includeSubDomains" if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS else ""
        hsts += "; preload" if settings.SECURE_HSTS_PRELOAD else ""
        headers.append(("Strict-Transport-Security", hsts))
    headers += [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", settings.SECURE_REFERRER_POLICY),
                ("X-Frame-Options", settings.X_FRAME_OPTIONS), ("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY),
                ("Content-Security-Policy", NGINX_CSP)]
    return headers


def render(*, server_name: str, upstreams: list[str], http_port: int = 80, https_port: int = 443,
           certificate: str, certificate_key: str, static_root: str | None = None,
           proxy_headers: str | None = None) -> str:
    """The site file; ${name} placeholders only, so nginx's own $variables pass through untouched."""
    from django.conf import settings

    if not upstreams:
        raise ValueError("at least one upstream web host is needed")
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted < 1:
        raise ValueError(
            "TRUSTED_PROXY_COUNT is 0 in the web hosts' settings, but this nginx is a proxy in front of them: "
            "every client would share nginx's address (one throttle, one sign-in lock-out for all). "
            "Set TRUSTED_PROXY_COUNT=1 in /etc/crowdlens.env (2 with a load balancer in front of nginx) "
            "and render again.")
    too_large = {"error": {"code": "too_large", "fields": {},
                           "message": f"The upload is larger than the limit of {settings.PHOTO_MAX_BYTES} bytes."}}
    values = {
        "server_name": server_name,
        "redirect_host": server_name.split()[0],
        "upstream_servers": "\n".join(f"    server {u} max_fails=1 fail_timeout=10s;" for u in upstreams),
        "http_port": str(http_port),
        "https_port": str(https_port),
        "upstream_keepalive_timeout": str(UPSTREAM_KEEPALIVE_SECONDS),
        "https_port_suffix": "" if https_port == 443 else f":{https_port}",
        "tls_certificate": certificate,
        "tls_certificate_key": certificate_key,
        "photo_max_bytes": str(settings.PHOTO_MAX_BYTES),
        "client_max_body_size": str(settings.REQUEST_MAX_BYTES),
        "too_large_body": json.dumps(too_large, separators=(",", ":")),
        "unavailable_body": json.dumps(UNAVAILABLE, separators=(",", ":")),
        "not_allowed_body": json.dumps(NOT_ALLOWED, separators=(",", ":")),
        "security_headers": "\n".join(f'        add_header {name} "{value}" always;'
                                       for name, value in security_headers(settings)),
        "static_url": settings.STATIC_URL,
        "static_root": str(static_root or settings.STATIC_ROOT).rstrip("/"),
        "proxy_headers": str(proxy_headers or PROXY_HEADERS),
        "trusted_proxy_count": str(trusted),
        "proxy_chain": ("nginx is the only proxy; the web hosts take the right-most address" if trusted == 1 else
                        f"{trusted - 1} more in front of nginx, each appending what it saw; the web hosts take the "
                        f"address {trusted} from the right"),
    }
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], TEMPLATE.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(HERE.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        default_name = urlsplit(settings.SITE_URL).hostname or "localhost"
    except ImproperlyConfigured as exc:  # the web hosts' environment is what it renders for: say what is missing
        sys.stderr.write(f"nginx_site: {exc}\n(run it with the environment the web hosts use, /etc/crowdlens.env)\n")
        return 2
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-name", default=default_name, help=f"default: SITE_URL's host ({default_name})")
    parser.add_argument("--upstream", action="append", default=[], metavar="HOST:PORT",
                        help="a web host's gunicorn (repeat for each; default 127.0.0.1:8000)")
    parser.add_argument("--http-port", type=int, default=80)
    parser.add_argument("--https-port", type=int, default=443)
    parser.add_argument("--certificate", help="default: Let's Encrypt's fullchain.pem for the server name")
    parser.add_argument("--certificate-key", help="default: Let's Encrypt's privkey.pem for the server name")
    parser.add_argument("--static-root", help=f"default: STATIC_ROOT ({settings.STATIC_ROOT})")
    parser.add_argument("--proxy-headers", help=f"path of proxy_headers.conf (default: {PROXY_HEADERS})")
    args = parser.parse_args(argv)
    live = f"/etc/letsencrypt/live/{args.server_name}"
    try:
        site = render(server_name=args.server_name, upstreams=args.upstream or ["127.0.0.1:8000"],
                      http_port=args.http_port, https_port=args.https_port,
                      certificate=args.certificate or f"{live}/fullchain.pem",
                      certificate_key=args.certificate_key or f"{live}/privkey.pem",
                      static_root=args.static_root, proxy_headers=args.proxy_headers)
    except ValueError as exc:
        sys.stderr.write(f"nginx_site: {exc}\n")
        return 2
    sys.stdout.write(site)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
