from __future__ import annotations

from django.conf import settings

from config.errors import error_response


class RequestSizeLimitMiddleware:
    """Refuse a body larger than REQUEST_MAX_BYTES from its Content-Length alone.

    The body is never read, so a 2 GB upload costs nothing. Bodies sent
    without a Content-Length (chunked) are cut off by the upload handler
    in collector.uploads as they stream in.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "bad_request", "Content-Length is not a number.")
        if length > settings.REQUEST_MAX_BYTES:
            response = error_response(
                413, "too_large", f"The upload is larger than the limit of {settings.PHOTO_MAX_BYTES} bytes."
            )
            response["Connection"] = "close"
            return response
        return self.get_response(request)
