"""How the OpenAPI schema describes the API: the error responses, security and path parameters, in one place.

Phone teams generate their clients from the schema, so it must list every
status an operation can answer, each error with its body. ``ApiSchema`` (the
DEFAULT_SCHEMA_CLASS) derives the errors a view can answer from what the view
is made of, so a new view is documented without anyone remembering to:

- a request body: 400 (invalid fields), 413 (too large), 415 (another media type);
- query parameters: 400 (invalid values); a paginated list: 400 (an empty page number), 404 (past the last page);
- authentication classes: 401 (a bad or unknown token; also when the
  permissions require a signed-in caller and none is);
- a permission stricter than "signed in", or session authentication on an
  unsafe method (CSRF): 403;
- path parameters: 404; throttles: 429;
- every operation: 503 (the database or the file storage did not answer; nothing was recorded).

Errors a view answers for other reasons (a conflict, an unknown label) are
declared on the view with ``extend_schema(responses={**error_responses(...)})``.
Every 4xx/5xx response gets the one error body (``Error``, produced by
config.errors). Public (AllowAny) operations are marked as needing no
credentials (``security: []``: no lock in Swagger UI), also those that answer
more to a signed-in caller (``credentials_optional = "what a signed-in caller
also gets"``: a thumbnail the caller owns, their own leaderboard row), whose
description says what a token sent anyway adds (docs/decisions.md).
"""

from __future__ import annotations

from http import HTTPStatus

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication

from config import error_codes
from config.errors import status_of


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Stable code for programs, one of: " + ", ".join(
            code for code, entry in error_codes.CODES.items() if not entry.reached_by and entry.status != 500)
        + ". Each operation's error responses name the codes it answers with.")
    message = serializers.CharField(help_text="A sentence for people, in English; may change, do not parse it.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="The fields at fault (a body field, a query parameter or a header) and what is wrong with each; "
                  "empty when the error is not about a field.")


class ErrorSerializer(serializers.Serializer):
    """The one JSON shape of every API error (config.errors)."""

    error = ErrorDetailSerializer(help_text="What went wrong.")


# What each status means in this API; an operation may say more (error_responses).
ERROR_DESCRIPTIONS = {
    400: "Invalid input: `error.fields` names each field (or parameter) that is wrong.",
    401: "No credentials where they are needed, or a token that is unknown (`Authorization: Token <key>`).",
    403: "Signed in but not allowed to do this (or, with a session cookie, no CSRF token).",
    404: "Not found (or not yours to see).",
    409: "Conflicts with the current state of the resource.",
    413: "The request body (or the image in it) is too large.",
    415: "The body's media type (or the image's format) is not supported.",
    422: "Understood, but it names something that cannot be used.",
    429: "Too many requests: retry after the number of seconds in the Retry-After header.",
    503: "A service the API depends on (database, cache, file storage or its disk) is unavailable, or the server is "
         "busy decoding other large images; nothing was recorded. Retry after the seconds in Retry-After.",
}

_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"},
                                "description": "Seconds to wait before trying again."}}

# Path parameters by name: the same meaning wherever they appear.
PATH_PARAMETER_DESCRIPTIONS = {
    "photo_id": "A photo's `id`.",
    "edition_id": "A newsletter edition's `id`.",
    "version": "A published model version number (`version` in the model list).",
    "variant": "A model file variant: int8, float16, dynamic or float32.",
}


def error_responses(*codes: str | int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """``extend_schema`` responses for errors a view answers beyond those its classes imply.

    ``error_responses("withdrawn", 422)`` declares the status of each code
    (config.error_codes) and lists the codes with what each means; a bare
    status uses the generic description. Pass ``s409="..."`` to say what the
    conflict is for this operation; the codes' list follows it.
    """
    by_status: dict[int, list[error_codes.ErrorCode]] = {}
    for code in codes:
        if isinstance(code, int):
            by_status.setdefault(code, [])
        else:
            entry = error_codes.registered(code)
            by_status.setdefault(status_of(entry), []).append(entry)
    for key in descriptions:
        by_status.setdefault(int(key.removeprefix("s")), [])
    out = {}
    for status, entries in by_status.items():
        text = descriptions.get(f"s{status}") or ERROR_DESCRIPTIONS[status]
        if entries:
            text += " Codes: " + "; ".join(f"`{e.code}`: {e.meaning}" for e in entries)
        out[status] = OpenApiResponse(ErrorSerializer, description=text)
    return out


class ApiSchema(AutoSchema):
    def _is_public(self) -> bool:
        return any(isinstance(p, permissions.AllowAny) for p in self.view.get_permissions())

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        if self._is_public():
            # Not "[{}]" (auth optional): clients and Swagger UI then show no lock at all.
            operation["security"] = []
            if extra := getattr(self.view, "credentials_optional", None):
                note = (f"Public: works without credentials. A caller who sends their token anyway "
                        f"(`Authorization: Token …`) or session cookie also gets this: {extra}.")
                operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
        responses = operation["responses"]
        for status, description in self._implied_errors(operation).items():
            responses.setdefault(str(status), {"description": description})
        error_body = {"application/json": {"schema": self.resolve_serializer(ErrorSerializer, "response").ref}}
        for code, response in responses.items():
            if not response.get("description"):
                response["description"] = HTTPStatus(int(code)).phrase
            if code >= "400" and "content" not in response:
                response["content"] = error_body
            if code in ("429", "503"):
                response.setdefault("headers", {}).update(_RETRY_AFTER)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _implied_errors(self, operation) -> dict[int, str]:
        view = self.view
        statuses: set[int] = set()
        parameters = operation.get("parameters", [])
        paginated = self._get_paginator() is not None and self._is_list_view()
        if "requestBody" in operation:
            statuses |= {400, 413, 415}
        if paginated or any(p["in"] == "query" for p in parameters):
            statuses.add(400)  # a page number sent empty is invalid (config.pagination), not page 1
        if paginated or any(p["in"] == "path" for p in parameters):
            statuses.add(404)
        authenticators = view.get_authenticators()
        if authenticators:
            statuses.add(401)
        perms = view.get_permissions()
        if any(not isinstance(p, (permissions.AllowAny, permissions.IsAuthenticated)) for p in perms):
            statuses.add(403)
        if self.method not in permissions.SAFE_METHODS and any(
                isinstance(a, SessionAuthentication) for a in authenticators):
            statuses.add(403)
        if view.get_throttles():
            statuses.add(429)
        statuses.add(503)  # config.errors answers it for any view when the database or storage is down
        return {status: ERROR_DESCRIPTIONS[status] for status in sorted(statuses)}

    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if not parameter.get("description") and parameter["name"] in PATH_PARAMETER_DESCRIPTIONS:
                parameter["description"] = PATH_PARAMETER_DESCRIPTIONS[parameter["name"]]
        return parameters
