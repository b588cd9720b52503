"""Sign-in lock-out (django-axes): the growing cool-off and the answer a locked-out client gets.

axes counts failed sign-ins per account and client address together, and per
client address alone (config.client_ip), in the database, so every worker and
host sees the same counts. An account reaching LOGIN_FAILURE_LIMIT failures
from one client is locked out *for that client*; a client reaching
LOGIN_CLIENT_FAILURE_LIMIT failures against any accounts is locked out for all
of them. An account is never locked for everyone: an outsider's failures
cannot keep its owner (the superuser, say) out from another address.
A lock lasts LOGIN_LOCKOUT_MINUTES; each further round of failures remembered
(axes' failure log, within the last LOGIN_LOCKOUT_MAX_MINUTES) doubles the next
lock, up to LOGIN_LOCKOUT_MAX_MINUTES. Attempts during a lock
are refused and not counted, so the lock ends when the answer said. Staff lift
a lock in the admin (Axes > Access attempts: delete the row) or with
`manage.py axes_reset_username NAME` / `axes_reset_ip IP`.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.shortcuts import render
from django.utils import timezone

from config.client_ip import client_ip
from config.errors import error_response

logger = logging.getLogger("crowdlens.lockout")

_USERNAME_ATTR = "crowdlens_login_username"


class LockoutBackend(AxesStandaloneBackend):
    """axes' check before every authenticate() made for a request; remembers the username for the cool-off.

    axes asks for the cool-off with the request alone; the API token endpoint's
    username is in a JSON body (not request.POST), so it is kept on the request here.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            # Not a sign-in over the network (a management command checking a password, the test
            # client's login()): nobody to lock out; axes itself would refuse to answer.
            return None
        setattr(request, _USERNAME_ATTR, username)
        return super().authenticate(request, username=username, password=password, **kwargs)


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler, with a limit of its own for each lock-out parameter.

    axes compares one failure count with one limit (AXES_FAILURE_LIMIT =
    LOGIN_FAILURE_LIMIT). Its count is the larger of the account-and-client
    failures and the client's failures scaled so that LOGIN_CLIENT_FAILURE_LIMIT
    of them reach LOGIN_FAILURE_LIMIT (AXES_LOCKOUT_PARAMETERS lists the account
    and client first, the client alone second).
    """

    def get_failures(self, request, credentials=None) -> int:
        from django.db.models import Sum

        counts = [attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
                  for attempts in self.get_user_attempts(request, credentials)]
        if len(counts) != 2:  # another AXES_LOCKOUT_PARAMETERS (a test's, say): axes' own rule
            return max(counts, default=0)
        by_account_and_client, by_client = counts
        return max(by_account_and_client, _scaled_client_count(by_client))


def _scaled_client_count(failures: int) -> int:
    return failures * settings.LOGIN_FAILURE_LIMIT // settings.LOGIN_CLIENT_FAILURE_LIMIT


def _lockout_rounds(request) -> int:
    """Rounds of failures remembered, this one included: LOGIN_FAILURE_LIMIT for this account from this client,
    or LOGIN_CLIENT_FAILURE_LIMIT from this client against any account, whichever makes more.

    axes asks before it logs the failure it is recording, so that failure is
    counted here as one more: the record a lock rests on then expires no
    sooner than the lock it starts.
    """
    from axes.models import AccessFailureLog

    since = timezone.now() - timedelta(minutes=settings.LOGIN_LOCKOUT_MAX_MINUTES)
    from_client = AccessFailureLog.objects.filter(attempt_time__gte=since,
                                                  ip_address=getattr(request, "axes_ip_address", None)
                                                  or client_ip(request))
    rounds = (from_client.count() + 1) // settings.LOGIN_CLIENT_FAILURE_LIMIT
    if username := getattr(request, _USERNAME_ATTR, None):
        rounds = max(rounds, (from_client.filter(username=username).count() + 1) // settings.LOGIN_FAILURE_LIMIT)
    return rounds


def cool_off(request=None) -> timedelta:
    """AXES_COOLOFF_TIME: LOGIN_LOCKOUT_MINUTES, doubled per further round of failures, capped."""
    base = timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
    cap = timedelta(minutes=settings.LOGIN_LOCKOUT_MAX_MINUTES)
    if request is None:
        return min(base, cap)
    lockouts = _lockout_rounds(request)
    if lockouts <= 1:
        return min(base, cap)
    doublings = min(lockouts - 1, 32)  # 2**32 x any base is past any cap
    return min(base * (2 ** doublings), cap)


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def _minutes_left(request) -> int:
    """Until the newest failure this lock rests on (both kinds are this client's) is older than the cool-off."""
    from axes.models import AccessAttempt
    from django.db.models import Max

    newest = AccessAttempt.objects.filter(
        ip_address=getattr(request, "axes_ip_address", None) or client_ip(request),
    ).aggregate(newest=Max("attempt_time"))["newest"]
    left = cool_off(request) - (timezone.now() - newest) if newest else cool_off(request)
    return max(1, math.ceil(left.total_seconds() / 60))


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: 429 in the API's error shape, or a page that says what happened and for how long."""
    minutes = _minutes_left(request)
    message = (f"Too many failed sign-ins from your address. "
               f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, or ask the site's staff to unlock it.")
    logger.warning("Sign-in locked out: username=%r ip=%s path=%s for %d more min",
                   getattr(request, _USERNAME_ATTR, None), getattr(request, "axes_ip_address", None),
                   request.path, minutes)
    if _wants_json(request):
        response = error_response(429, "locked_out", message)
    else:
        response = render(request, "locked_out.html", {"message": message, "minutes": minutes}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response
