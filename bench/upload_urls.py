"""The production URLconf plus /bench/baseline-upload/ (see bench/upload_settings.py)."""

from django.core.files.storage import default_storage
from django.urls import path
from PIL import Image
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from collector import storage
from config.domain_errors import Invalid
from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as production_urlpatterns


class BaselineUploadApi(APIView):
    """The least work that proves an upload is an image: store the bytes, decode them fully once.

    Same stack as the real endpoint (middleware, token auth, multipart parsing
    into a spooled temporary file, the same storage); none of the collector's
    work (sniffing, orientation, derivatives, hashes, duplicate search, rows).
    """

    parser_classes = [MultiPartParser]

    def post(self, request):
        upload = request.data.get("image")
        if upload is None:
            raise Invalid("image is required", fields={"image": ["Required."]})
        key = default_storage.save(f"bench/{storage.new_photo_prefix()}/original", upload)
        upload.seek(0)
        with Image.open(upload) as image:
            image.load()
            size = image.size
        return Response({"key": key, "width": size[0], "height": size[1]}, status=status.HTTP_201_CREATED)


urlpatterns = [path("bench/baseline-upload/", BaselineUploadApi.as_view()), *production_urlpatterns]
