"""Rates on collector's writes, shared by the API (collector.apis) and the volunteers' pages (pages.views):
both count against the same cache bucket, so neither is a way around the other's limit."""

from django.conf import settings
from config.throttling import UserRateThrottle


class UploadThrottle(UserRateThrottle):
    """Uploads per volunteer (per IP for anonymous requests): PHOTO_UPLOAD_RATE, read per request."""

    scope = "uploads"

    def get_rate(self):
        return settings.PHOTO_UPLOAD_RATE
