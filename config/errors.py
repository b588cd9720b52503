"""The one JSON shape of every API error, produced here and nowhere else:

    {"error": {"code": "...", "message": "...", "fields": {...}}}

Services and views raise ``config.domain_errors.DomainError`` subclasses,
which know nothing of HTTP, with a code registered in ``config.error_codes``; ``STATUS_BY_KIND`` below is the one table that gives each
kind its status. DRF exceptions pass through ``api_exception_handler``;
Django's own 404/500 handlers and the request-size middleware use
``error_response`` so that errors raised outside DRF (unknown URLs, bodies too
large) look the same.
"""

from __future__ import annotations

import errno
import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config import domain_errors, error_codes

logger = logging.getLogger("crowdlens.errors")


class _HttpError(exceptions.APIException):
    """A domain error on its way out through DRF: its status, code, message and fields."""

    def __init__(self, exc: domain_errors.DomainError):
        self.status_code = status_for(exc)
        self.code = exc.code
        self.fields = exc.fields
        super().__init__(detail=exc.message, code=exc.code)


# The one place a domain error's kind becomes an HTTP status (most specific first).
STATUS_BY_KIND: tuple[tuple[type[domain_errors.DomainError], int], ...] = (
    (domain_errors.Invalid, 400),
    (domain_errors.NotAuthenticated, 401),
    (domain_errors.Forbidden, 403),
    (domain_errors.NotFound, 404),
    (domain_errors.Conflict, 409),
    (domain_errors.TooLarge, 413),
    (domain_errors.Unsupported, 415),
    (domain_errors.Unprocessable, 422),
    (domain_errors.Unavailable, 503),
)


# Seconds a client is asked to wait (Retry-After) when a part the site depends on is down: long enough
# for a restarting database or Redis to come back, short enough that a phone's retry soon succeeds.
UNAVAILABLE_RETRY_AFTER = 10


def _cache_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a declared dependency
        return ()
    return (RedisConnectionError, RedisTimeoutError)


# Redis unreachable (refused, reset, timed out; BusyLoadingError is a ConnectionError): the throttle
# counters and lock-outs cannot be read, so nothing throttled may go on.
CACHE_ERRORS = _cache_errors()
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def unavailable_part(exc: BaseException) -> domain_errors.Unavailable | None:
    """The 503 to answer when ``exc`` says a part the site depends on is down, not a bug: retry later.

    The database (unreachable, restarting, locked past its busy timeout), the cache (Redis), the disk that
    uploads are spooled to or stored on (full). Anything else is None: a real error, answered 500 and logged.
    """
    if isinstance(exc, (OperationalError, InterfaceError)):
        return domain_errors.DatabaseUnavailable()
    if CACHE_ERRORS and isinstance(exc, CACHE_ERRORS):
        return domain_errors.Unavailable("A service this site depends on is unavailable; nothing was recorded. "
                                         "Retry later.")
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return domain_errors.StorageUnavailable()
    return None


def unavailable_response(request, error: domain_errors.Unavailable):
    """The 503 of a failing part: the error shape for the API, the "try again soon" page for people.

    The page is rendered without the request: its context processors would ask the session and the
    user (the database, perhaps the part that is down) again.
    """
    if _wants_json(request):
        response = error_response(503, error.code, error.message)
    else:
        response = HttpResponse(render_to_string("503.html", {"user": None, "messages": (),
                                                              "retry_after": UNAVAILABLE_RETRY_AFTER}), status=503)
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


def status_for(exc: domain_errors.DomainError | type[domain_errors.DomainError]) -> int:
    kind = exc if isinstance(exc, type) else type(exc)
    for base, status_code in STATUS_BY_KIND:
        if issubclass(kind, base):
            return status_code
    return 400


def status_of(entry: error_codes.ErrorCode) -> int:
    """The status a registered code is answered with."""
    return entry.status if entry.kind is None else status_for(entry.kind)


_DEFAULT_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}


def error_body(status_code: int, code: str | None, message: str, fields: dict | None = None) -> dict:
    code = code or _DEFAULT_CODES.get(status_code, "error")
    error_codes.registered(code)  # every code a client can see is documented (config.error_codes)
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(status_code: int, code: str | None, message: str, fields: dict | None = None) -> JsonResponse:
    return JsonResponse(error_body(status_code, code, message, fields), status=status_code)


def _flatten(detail) -> dict:
    """Turn DRF's nested ValidationError detail into {field: [messages]}."""
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub_key, sub_value in _flatten(value).items():
                    out[f"{key}.{sub_key}"] = sub_value
            elif isinstance(value, list):
                out[key] = [str(v) for v in value]
            else:
                out[key] = [str(value)]
        return out
    return {}


def api_exception_handler(exc, context):
    if (part := unavailable_part(exc)) is not None:
        # The database, Redis or the upload disk is down or full: the client
        # can retry, and nothing was committed.
        logger.warning("Unavailable in API view (%s): %r", part.code, exc)
        exc = part
    elif isinstance(exc, RequestDataTooBig):
        # Form fields (not files) larger than DATA_UPLOAD_MAX_MEMORY_SIZE.
        exc = domain_errors.TooLarge("The form fields of this request are too large.")
    elif isinstance(exc, SuspiciousOperation):
        # TooManyFieldsSent, TooManyFilesSent, a malformed multipart body...: the
        # client's fault, raised while DRF parses request.data inside the view.
        exc = domain_errors.Invalid("The request body could not be read.", code="bad_request")
    if isinstance(exc, domain_errors.DomainError):
        exc = _HttpError(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unexpected error in API view", exc_info=exc)
        return Response(error_body(500, "server_error", "Something went wrong on our side; it has been logged."), status=500)

    if isinstance(exc, _HttpError):
        body = error_body(exc.status_code, exc.code, str(exc.detail), exc.fields)
    elif isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail) if isinstance(exc.detail, dict) else {}
        non_field = fields.pop("non_field_errors", None)
        if isinstance(exc.detail, list):
            message = "; ".join(str(d) for d in exc.detail)
        elif non_field:
            message = "; ".join(non_field)
        else:
            message = "Some fields are invalid: " + ", ".join(sorted(fields))
        body = error_body(400, "invalid", message, fields)
    elif isinstance(exc, exceptions.Throttled):
        body = error_body(429, "throttled", str(exc.detail))
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(detail, "code", None)
        if code in (None, "error", "invalid") or not isinstance(code, str) or code not in error_codes.CODES:
            code = None  # a library's own code that we do not document: the status's code instead
        body = error_body(response.status_code, code, str(detail))
    response.data = body
    if response.status_code == 503:
        response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def handler404(request, exception=None):
    if _wants_json(request):
        return error_response(404, "not_found", "Not found.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    # Called inside Django's handler of the exception (a middleware's too, which process_exception never
    # sees), so it is still the current one: a part that is down answers 503, not 500.
    exc = sys.exc_info()[1]
    if exc is not None and (part := unavailable_part(exc)) is not None:
        return unavailable_response(request, part)
    if _wants_json(request):
        return error_response(500, "server_error", "Something went wrong on our side; it has been logged.")
    from django.views.defaults import server_error

    return server_error(request)


def handler403(request, exception=None):
    if _wants_json(request):
        return error_response(403, "permission_denied", "You do not have permission to perform this action.")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)


def handler400(request, exception=None):
    if _wants_json(request):
        return error_response(400, "bad_request", "Bad request.")
    from django.views.defaults import bad_request

    return bad_request(request, exception)


__all__ = ["STATUS_BY_KIND", "UNAVAILABLE_RETRY_AFTER", "api_exception_handler", "error_response", "status",
           "status_for", "status_of", "unavailable_part", "unavailable_response"]
