"""Model delivery for phones: manifests (with ETag), the list of versions, downloads.

Public on purpose: a phone checks for a new model before anyone signs in, and
a model is no secret (it ships inside every app). See docs/training.md.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from collector import storage
from config.domain_errors import Invalid, NotFound
from config.errors import error_response
from config.openapi import error_responses
from config.two_factor import session_is_verified
from config.pagination import PageNumberPagination
from training import selectors
from training.models import ModelFile, ModelVersion
from training.serializers import (
    INSTALL_ID_PATTERN,
    FieldAccuracyOutput,
    LatestQuery,
    ManifestOutput,
    ModelVersionOutput,
    VariantQuery,
)

_MANIFEST_ERRORS = {
    304: OpenApiResponse(description="Not modified: the If-None-Match ETag is still current"),
    400: OpenApiResponse(description="Unknown variant"),
    **error_responses("not_found", "no_model", "variant_not_available",
                      s404="No such published version (or none published yet), or a variant it lacks; a version "
                           "whose staged rollout staff halted or rolled back is found by staff only."),
}
_VARIANT_PARAM = OpenApiParameter("variant", str, enum=list(settings.TRAINING_VARIANT_NAMES), required=False,
                                  description="int8 | float16 | dynamic | float32 (.tflite) or coreml (zipped Core ML "
                                              "package) (default TRAINING_DEFAULT_VARIANT)")
_INSTALL_ID_HEADER = OpenApiParameter(
    "X-Install-Id", str, OpenApiParameter.HEADER, required=False, pattern=INSTALL_ID_PATTERN,
    description="The phone's stable install id (wins over the install_id query parameter): picks its "
                "staged-rollout bucket. Without one the phone gets the version in service for all.")
# Response headers: generated clients read the manifest's ETag to send it back as If-None-Match.
_MANIFEST_ETAG_HEADER = OpenApiParameter(
    "ETag", str, OpenApiParameter.HEADER, response=[200, 304],
    description='The manifest\'s version: "v<version>-<variant>-<sha256 prefix>". Send it back as If-None-Match.')
_DOWNLOAD_ETAG_HEADER = OpenApiParameter(
    "ETag", str, OpenApiParameter.HEADER, response=[200, 206, 304],
    description='The file\'s sha256 in quotes ("<sha256>"): for If-None-Match and If-Range.')
_ETAG_PARAM = OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False,
                               description="The ETag of the manifest the phone has; 304 when still current")
_DOWNLOAD_ETAG_PARAM = OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False,
                                        description='The file\'s ETag ("<sha256>"); 304 when it is this file')
_RANGE_PARAM = OpenApiParameter(
    "Range", str, OpenApiParameter.HEADER, required=False,
    description="One byte range to resume a download: bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX_LENGTH "
                "(206). Several ranges, another unit or a malformed value are ignored (200, the whole file); "
                "a first byte at or past the end is 416. Local storage only: on S3 the presigned URL does ranges.")
_IF_RANGE_PARAM = OpenApiParameter(
    "If-Range", str, OpenApiParameter.HEADER, required=False,
    description='With Range: the ETag ("<sha256>") of the partial file the phone holds; when it is not this '
                "file's (or is a date), Range is ignored and the whole file is sent (200).")


class PublicApiView(APIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]


def _caller_is_staff(request) -> bool:
    """Staff signed in to the admin (session) or sending their token; the public views authenticate no one,
    so that a stale token never turns a phone's model check into a 401."""
    from django.contrib.auth import get_user
    from rest_framework.authtoken.models import Token

    user = get_user(request._request)  # the session's (DRF set request.user to anonymous for these views)
    if user.is_authenticated:
        return bool(user.is_staff) and session_is_verified(request._request, user)
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "token" or not key.strip():
        return False
    token = Token.objects.select_related("user").filter(key=key.strip()).first()
    return bool(token and token.user.is_active and token.user.is_staff)


def _published_for_caller(request, version: int) -> ModelVersion | None:
    """A published version by its number; one whose rollout staff halted or rolled back for staff only."""
    found = selectors.model_version_get_published(version=version)
    if found is not None and selectors.model_version_withheld(version=found) and not _caller_is_staff(request):
        return None
    return found


def _variant(request) -> str | None:
    """The ?variant= asked for; None: the version's default (``ModelVersion.phone_variant``)."""
    query = VariantQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data.get("variant")


def manifest_etag(version: ModelVersion, file: ModelFile) -> str:
    return f'"v{version.version}-{file.variant}-{file.sha256[:16]}"'


def _etag_matches(header: str, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in [t[2:] if t.startswith("W/") else t for t in tags]


def _download_url(request, version: ModelVersion, file: ModelFile) -> str:
    if storage.is_remote():
        return storage.url_for(file.model_key, expire=settings.S3_PRESIGN_TTL)
    return request.build_absolute_uri(reverse("model-download", args=[version.version, file.variant]))


def _latest_query(request) -> tuple[str | None, str | None]:
    """(variant, install id) of a `latest` request; the X-Install-Id header wins over ?install_id=; either sent
    empty or malformed is a 400."""
    query = LatestQuery(data=request.query_params)  # an invalid ?install_id= is refused even when the header wins
    query.is_valid(raise_exception=True)
    install_id = query.validated_data.get("install_id")
    header = request.headers.get("X-Install-Id")
    if header is not None:
        if not re.fullmatch(INSTALL_ID_PATTERN, header):
            raise Invalid("X-Install-Id must be 1 to 128 printable ASCII characters, no spaces.",
                          fields={"install_id": ["X-Install-Id: 1 to 128 printable ASCII characters, no spaces."]})
        install_id = header
    return query.validated_data.get("variant"), install_id


def _manifest_response(request, version: ModelVersion, variant: str | None) -> HttpResponse:
    variant = variant or version.phone_variant()
    file = selectors.model_file_get(version=version, variant=variant)
    if file is None:
        raise NotFound(f"Model v{version.version} has no {variant} file.", code="variant_not_available",
                       fields={"variant": [f"Not exported for v{version.version}."]})
    etag = manifest_etag(version, file)
    if _etag_matches(request.headers.get("If-None-Match", ""), etag):
        response = HttpResponse(status=304)
    else:
        metrics = version.metrics.get(variant, {})
        body = {
            "version": version.version,
            "variant": variant,
            "sha256": file.sha256,
            "size": file.size_bytes,
            "download_url": _download_url(request, version, file),
            "created_at": version.created_at,
            "labels": list(version.labels),
            "input": file.input_spec,
            "metrics": {
                "accuracy": metrics.get("accuracy"),
                "latency_ms": metrics.get("latency_ms"),
                "test_examples": metrics.get("test_examples"),
                "interval": metrics.get("interval"),
                "photos": metrics.get("photos"),
                "method": metrics.get("method"),
                "per_class": metrics.get("per_class", {}),
            },
            "min_app_version": version.min_app_version,
            "default_variant": {"variant": version.phone_variant(),
                                "why": (version.default_variant_why if settings.TRAINING_DEFAULT_VARIANT == "auto"
                                        else "TRAINING_DEFAULT_VARIANT names it.") or "Chosen before versions chose their own."},
        }
        response = Response(ManifestOutput(body).data)
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"  # always revalidate: cheap with If-None-Match
    # The same URL answers devices differently during a staged rollout: caches key on the install id.
    response["Vary"] = "Accept, X-Install-Id"
    return response


class ModelLatestApi(PublicApiView):
    @extend_schema(parameters=[LatestQuery, _INSTALL_ID_HEADER, _ETAG_PARAM, _MANIFEST_ETAG_HEADER],
                   responses={200: ManifestOutput, **_MANIFEST_ERRORS,
                              400: OpenApiResponse(description="Unknown variant or malformed install id")}, tags=["models"],
                   summary="Manifest of the model this device should run",
                   description="The version in service, or, during a staged rollout, the rollout's version for "
                               "devices whose install id falls in its percentage. The ETag follows the version "
                               "this device gets.")
    def get(self, request):
        variant, install_id = _latest_query(request)
        version = selectors.model_for_device(install_id=install_id)
        if version is None:
            raise NotFound("No model has been published yet; check again after the nightly training."
                           + (f" {why}" if (why := selectors.no_model_reason()) else ""), code="no_model")
        if variant is not None and selectors.model_file_get(version=version, variant=variant) is None:
            # A variant can fail to export alone (coreml): phones asking for it keep the last version that has it.
            version = selectors.model_version_latest_with(variant=variant, up_to=version) or version
        return _manifest_response(request, version, variant)


class ModelDetailApi(PublicApiView):
    @extend_schema(parameters=[_VARIANT_PARAM, _ETAG_PARAM, _MANIFEST_ETAG_HEADER], responses={200: ManifestOutput, **_MANIFEST_ERRORS},
                   tags=["models"], summary="Manifest of one published version")
    def get(self, request, version: int):
        variant = _variant(request)
        found = _published_for_caller(request, version)
        if found is None:
            raise NotFound(f"There is no published model version {version}.")
        return _manifest_response(request, found, variant)


class ModelFieldAccuracyApi(APIView):
    """Staff only: how the phones' own predictions with one version fared against the reviewers' labels."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses={200: FieldAccuracyOutput,
                              401: OpenApiResponse(description="Not signed in"),
                              403: OpenApiResponse(description="Not staff"),
                              404: OpenApiResponse(description="No such published version")},
                   tags=["models"], summary="Field accuracy of one published version (staff)")
    def get(self, request, version: int):
        if selectors.model_version_get_published(version=version) is None:
            raise NotFound(f"There is no published model version {version}.")
        return Response(FieldAccuracyOutput(selectors.model_version_field_accuracy(version=version)).data)


class ModelListApi(PublicApiView):
    pagination_class = PageNumberPagination

    @extend_schema(responses={200: ModelVersionOutput(many=True)}, tags=["models"],
                   summary="Published model versions, newest first")
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.model_versions_published_list(), request, view=self)
        rows = [{
            "version": mv.version, "created_at": mv.created_at, "published_at": mv.published_at,
            "in_service": bool(mv.in_service), "strategy": mv.strategy, "dataset_version": mv.dataset_version_id,
            "labels": mv.labels, "min_app_version": mv.min_app_version,
            "variants": [{"variant": f.variant, "sha256": f.sha256, "size": f.size_bytes,
                          "accuracy": mv.accuracy(f.variant)} for f in mv.files.all()],
        } for mv in page]
        return paginator.get_paginated_response(ModelVersionOutput(rows, many=True).data)


_BYTES_RANGE = re.compile(r"bytes=(.*)", re.IGNORECASE | re.DOTALL)
_RANGE_SPEC = re.compile(r"(\d*)-(\d*)")


class _RangeNotSatisfiable(Exception):
    pass


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range a Range header asks for, as (first, last) inclusive and within the file.

    None means "ignore the header and send the whole file", which RFC 9110 (14.2)
    allows for anything we do not serve: several ranges (phones resume with one;
    multipart/byteranges is not worth its code), another unit, a malformed or
    invalid spec (last < first). Raises _RangeNotSatisfiable when the range starts
    at or past the end (or is a zero-length suffix): 416.
    """
    match = _BYTES_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    specs = [spec.strip() for spec in match.group(1).split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    spec = _RANGE_SPEC.fullmatch(specs[0])
    if spec is None or spec.group(1) == spec.group(2) == "":
        return None
    try:
        first = int(spec.group(1)) if spec.group(1) else None
        last = int(spec.group(2)) if spec.group(2) else None
    except ValueError:  # more digits than int() takes: no file of ours is that large anyway
        return None
    if first is None:  # bytes=-N: the last N bytes (the whole file when N >= size)
        if last == 0 or size == 0:
            raise _RangeNotSatisfiable
        return max(0, size - last), size - 1
    if last is not None and last < first:
        return None
    if first >= size:
        raise _RangeNotSatisfiable
    return first, size - 1 if last is None else min(last, size - 1)


class _ByteSlice:
    """``length`` bytes of an open file from where it stands, for FileResponse to stream (then close the file).

    No tell()/seek() on purpose: FileResponse would otherwise measure the rest of
    the file for Content-Length, which is wrong for a range that stops early.
    """

    def __init__(self, handle, length: int):
        self._handle = handle
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._handle.read(self._left if size is None or size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


class AnyAcceptNegotiation(BaseContentNegotiation):
    """The download answers file bytes (not rendered by DRF) or a JSON error, whatever `Accept` says.

    DRF's default negotiation answered 406 to `Accept: application/octet-stream`, which download
    clients send for a binary file, before the view ran.
    """

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _download_name(version: int, variant: str, file: ModelFile) -> str:
    """crowdlens-v12-int8.tflite, crowdlens-v12-coreml.mlpackage.zip: the stored file's extension."""
    suffix = file.model_key.rsplit("/", 1)[-1].removeprefix("model")
    return f"crowdlens-v{version}-{variant}{suffix}"


class ModelDownloadApi(PublicApiView):
    """The model file's bytes (.tflite, or the zipped Core ML package): streamed from local storage (one byte range resumes), or a redirect to a presigned S3 URL."""

    content_negotiation_class = AnyAcceptNegotiation

    @extend_schema(parameters=[_DOWNLOAD_ETAG_PARAM, _RANGE_PARAM, _IF_RANGE_PARAM, _DOWNLOAD_ETAG_HEADER],
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                              (206, "application/octet-stream"): OpenApiResponse(
                                  OpenApiTypes.BINARY,
                                  description="Partial content: the one byte range asked for (Content-Range)"),
                              302: OpenApiResponse(description="Redirect to a presigned S3 URL"),
                              304: OpenApiResponse(description="Not modified (If-None-Match: the file's sha256)"),
                              **error_responses("not_found", "range_not_satisfiable",
                                                s404="No such published version or variant (a version whose "
                                                     "staged rollout was halted or rolled back: staff only)",
                                                s416="Range not satisfiable: it starts at or past the end "
                                                     "of the file (Content-Range: bytes */SIZE).")},
                   tags=["models"], summary="Download a model file")
    def get(self, request, version: int, variant: str):
        found = _published_for_caller(request, version)
        file = selectors.model_file_get(version=found, variant=variant) if found is not None else None
        if file is None:
            raise NotFound(f"There is no published model v{version} {variant} file.")
        if storage.is_remote():
            # S3 answers Range on the presigned URL itself.
            return HttpResponseRedirect(storage.url_for(file.model_key, expire=settings.S3_PRESIGN_TTL))
        etag = f'"{file.sha256}"'
        if _etag_matches(request.headers.get("If-None-Match", ""), etag):
            response = HttpResponse(status=304)
            response["ETag"] = etag
            return response
        size = file.size_bytes
        wanted = None
        range_header = request.headers.get("Range")
        # If-Range: only our own strong ETag, byte for byte; a weak tag, another tag or a date
        # (we send no Last-Modified) means "the part I hold may be stale": the whole file.
        if range_header is not None and request.headers.get("If-Range", etag).strip() == etag:
            try:
                wanted = _byte_range(range_header, size)
            except _RangeNotSatisfiable:
                response = error_response(416, "range_not_satisfiable",
                                          f"The range {range_header.strip()!r} starts at or past the end of the "
                                          f"{size}-byte file.")
                response["Content-Range"] = f"bytes */{size}"
                response["Accept-Ranges"] = "bytes"
                return response
        try:
            handle = storage.open_file(file.model_key)
        except FileNotFoundError:
            raise NotFound(f"The v{version} {variant} file is missing from storage.") from None
        first, last = wanted or (0, size - 1)
        if wanted is not None:
            try:
                handle.seek(first)
            except BaseException:
                handle.close()
                raise
        response = FileResponse(handle if wanted is None else _ByteSlice(handle, last - first + 1),
                                status=200 if wanted is None else 206, content_type="application/octet-stream",
                                as_attachment=True, filename=_download_name(version, variant, file))
        response["Content-Length"] = str(last - first + 1)
        if wanted is not None:
            response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Accept-Ranges"] = "bytes"
        response["ETag"] = etag
        response["Cache-Control"] = "public, max-age=31536000, immutable"  # published files never change
        return response
