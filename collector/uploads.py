from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from config.domain_errors import TooLarge


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Spools uploads to a temporary file and stops at PHOTO_MAX_BYTES.

    The middleware already refuses bodies whose Content-Length is too large;
    this catches bodies streamed without one, while they stream, so an
    oversized upload never sits whole in memory or on disk.
    """

    def new_file(self, *args, **kwargs):
        self._received = 0
        return super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self._received += len(raw_data)
        if self._received > settings.PHOTO_MAX_BYTES:
            self.file.close()
            raise TooLarge(f"The request is larger than the limit of {settings.PHOTO_MAX_BYTES} bytes.")
        try:
            return super().receive_data_chunk(raw_data, start)
        except OSError:
            # The spool's disk is full (config.errors answers 503 storage_unavailable): the part written
            # goes at once (a named temporary file is deleted when closed), not when it is collected.
            self.file.close()
            raise
