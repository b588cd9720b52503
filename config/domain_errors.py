"""Errors that services raise: what went wrong, in domain words, never an HTTP status.

A service says *what kind* of failure happened (the thing is missing, the
request is invalid, it conflicts with the current state...) with a stable
``code`` for programs, a ``message`` for people and per-field ``fields``.
``config.errors`` maps each kind to the API's status and error shape in one
table; the pages and the admin show ``message``.

    raise NotFound("There is no published model version 7.")
    raise Conflict("This photo was withdrawn by its volunteer.", code="withdrawn")
    raise Invalid("That display name is taken.", fields={"display_name": ["Already taken."]})

Every code is registered, with what it means, in ``config.error_codes``:
raising one that is not fails at once (``UnknownErrorCode``).

This module imports nothing from Django or DRF, so every app (and lib/ code)
may raise these.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose. Subclass by kind, not by place."""

    default_code = "error"
    default_message = "The request could not be carried out."

    def __init__(self, message: str | None = None, *, code: str | None = None, fields: dict | None = None):
        self.message = message or self.default_message
        self.code = code or self.default_code
        from config.error_codes import registered  # the registry imports the kinds below

        registered(self.code, type(self))
        self.fields = {key: [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
                       for key, value in (fields or {}).items()}
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class Invalid(DomainError):
    """The input itself is wrong (a field missing or malformed): fix the request."""

    default_code = "invalid"
    default_message = "Some fields are invalid."


class NotAuthenticated(DomainError):
    default_code = "not_authenticated"
    default_message = "Sign in first."


class Forbidden(DomainError):
    """The caller is known but may not do this."""

    default_code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class NotFound(DomainError):
    default_code = "not_found"
    default_message = "Not found."


class Conflict(DomainError):
    """The request is well formed but the current state forbids it (already ended, withdrawn...)."""

    default_code = "conflict"
    default_message = "This conflicts with the current state."


class TooLarge(DomainError):
    default_code = "too_large"
    default_message = "The request is too large."


class Unsupported(DomainError):
    """The content is of a kind the server does not take (an image format, a media type)."""

    default_code = "unsupported"
    default_message = "This kind of content is not supported."


class Unprocessable(DomainError):
    """Well formed and understood, but it names something that cannot be used (an unknown label, a closed challenge)."""

    default_code = "unprocessable"
    default_message = "The request cannot be processed."


class Unavailable(DomainError):
    """A service this depends on (storage, database) is down: retry later, nothing was recorded."""

    default_code = "unavailable"
    default_message = "A service is unavailable; nothing was recorded. Retry later."


class StorageUnavailable(Unavailable):
    default_code = "storage_unavailable"
    default_message = "File storage is unavailable; nothing was recorded. Retry later."


class DatabaseUnavailable(Unavailable):
    default_code = "database_unavailable"
    default_message = "The database is busy or unreachable; nothing was recorded. Retry later."
