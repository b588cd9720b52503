"""Who is the client of a request: the one rule every per-client limit keys on.

Without a trusted reverse proxy (TRUSTED_PROXY_COUNT=0, the default) the
client is the socket's peer, REMOTE_ADDR; X-Forwarded-For is ignored, since
anyone can send it. Behind N proxies that each append the address they
received the request from, the hop chain is X-Forwarded-For's entries followed
by REMOTE_ADDR (the last proxy); the client is the address N hops left of the
end. Entries further left were written by the client itself and are never
believed. A chain shorter than that (a request that bypassed a proxy, such as
a health check) yields its leftmost entry.

DRF's throttles apply the same rule through NUM_PROXIES (set from the same
variable in settings); tests/hardening/test_client_ip.py checks that DRF's
get_ident and this function agree, so the rule is written once here and DRF's
copy cannot drift from it unnoticed. django-axes reaches it through
AXES_CLIENT_IP_CALLABLE.
"""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str:
    remote_addr = request.META.get("REMOTE_ADDR", "") or ""
    trusted = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not trusted or not forwarded:
        return remote_addr
    hops = forwarded.split(",")  # REMOTE_ADDR, the last proxy, is hop N itself
    return hops[-min(trusted, len(hops))].strip()

