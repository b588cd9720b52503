from __future__ import annotations

import logging
import tempfile

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream

from config.errors import error_response, unavailable_part, unavailable_response

logger = logging.getLogger("crowdlens.errors")

_CHUNK = 64 * 1024
_SPOOL_IN_MEMORY = 1024 * 1024  # chunked bodies above this spool to a temporary file


def _too_large():
    response = error_response(413, "too_large", f"The upload is larger than the limit of {settings.PHOTO_MAX_BYTES} bytes.")
    response["Connection"] = "close"
    return response


def _is_multipart(request) -> bool:
    return request.META.get("CONTENT_TYPE", "").lower().startswith("multipart/")


class RequestSizeLimitMiddleware:
    """Refuse a body larger than REQUEST_MAX_BYTES without holding it in memory.

    With a Content-Length the decision is made from the header alone: the
    body is never read, so a 2 GB upload costs nothing. A chunked body (no
    Content-Length; phones streaming from a file do this) is copied, as it
    streams, into a spooled temporary file and refused the moment it passes
    the limit; Django then reads the spooled copy as if it had had a length.
    Servers that do not de-chunk the body for the application (Django's
    runserver, plain wsgiref) get 411 instead of a silently empty request.
    Files bigger than PHOTO_MAX_BYTES inside an acceptable request are cut
    off by the upload handler in collector.uploads as they stream in.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not raw_length.strip():
            return self._chunked(request)
        try:
            length = int(raw_length or 0)
        except ValueError:
            return error_response(400, "bad_request", "Content-Length is not a number.")
        if length < 0:
            return error_response(400, "bad_request", "Content-Length is negative.")
        if length > settings.REQUEST_MAX_BYTES:
            return _too_large()
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE and not _is_multipart(request):
            # JSON and form bodies are read whole into memory by the parsers:
            # only file uploads (multipart, spooled to disk) may be large.
            return error_response(413, "too_large",
                                  f"A request body without files may not exceed {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
        return self.get_response(request)

    def _chunked(self, request):
        if not request.META.get("wsgi.input_terminated"):
            return error_response(411, "length_required",
                                  "Send a Content-Length: this server cannot read a chunked request body.")
        limit = settings.REQUEST_MAX_BYTES
        source = request.META["wsgi.input"]
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, dir=settings.FILE_UPLOAD_TEMP_DIR)
        size = 0
        try:
            while True:
                chunk = source.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit or (size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE and not _is_multipart(request)):
                    spool.close()
                    return _too_large()
                try:
                    spool.write(chunk)
                except OSError as exc:  # the spool's disk is full: 503, and the spool file goes (finally)
                    if (part := unavailable_part(exc)) is None:
                        raise
                    logger.warning("Could not spool a chunked request body: %r", exc)
                    return unavailable_response(request, part)
            spool.seek(0)
            request.META["CONTENT_LENGTH"] = str(size)
            request._stream = LimitedStream(spool, size)
            return self.get_response(request)
        finally:
            spool.close()


class ServiceUnavailableMiddleware:
    """A page whose database, cache (Redis) or disk is down or full answers 503 "try again soon", not 500.

    The API answers these itself (config.errors.api_exception_handler); this catches them in every other
    view, and config.errors.handler500 in middleware (which ``process_exception`` never sees).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        part = unavailable_part(exception)
        if part is None:
            return None
        logger.warning("Unavailable in %s (%s): %r", request.path, part.code, exception)
        return unavailable_response(request, part)
