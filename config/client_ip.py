"""Who is the client of a request: the one rule every per-client limit keys on.

Without a trusted reverse proxy (TRUSTED_PROXY_COUNT=0, the default) the
client is the socket's peer, REMOTE_ADDR; X-Forwarded-For is ignored, since
anyone can send it. Behind N proxies that each append the address they
received the request from, the hop chain is X-Forwarded-For's entries followed
by REMOTE_ADDR (the last proxy); the client is the address N hops left of the
end. Entries further left were written by the client itself and are never
believed. A chain shorter than that (a request that bypassed a proxy, such as
a health check) yields its leftmost entry.

The chosen hop must be an IP address. Anything else ("unknown", a name, an
address with a port, garbage a client put where a proxy was expected) is not
believed: the client is then REMOTE_ADDR, the nearest proxy. Otherwise every
distinct string would be a fresh throttle and lock-out bucket.

The throttles (config.throttling) and django-axes (AXES_CLIENT_IP_CALLABLE)
both call this function, so the rule is written once. DRF's NUM_PROXIES is set
from the same variable for any DRF class used directly.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    remote_addr = request.META.get("REMOTE_ADDR", "") or ""
    trusted = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not trusted or not forwarded:
        return remote_addr
    hops = forwarded.split(",")  # REMOTE_ADDR, the last proxy, is hop N itself
    chosen = hops[-min(trusted, len(hops))].strip()
    try:
        return str(ipaddress.ip_address(chosen))
    except ValueError:
        return remote_addr

