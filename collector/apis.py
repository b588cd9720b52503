"""HTTP API of the collector app: thin views that validate, call a service, serialize."""

from __future__ import annotations

import re

from django.contrib.auth import authenticate
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from config.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from collector import selectors, services, storage
from collector.models import Photo
from collector.serializers import (
    AuthTokenInput,
    AuthTokenOutput,
    LabelOutput,
    MeOutput,
    MeUpdateInput,
    PhotoOutput,
    PhotoReviewInput,
    PhotoStatusFilter,
    PhotoUploadInput,
    ReviewQueueFilter,
    ReviewQueueItemOutput,
    VerificationInput,
    VerificationNextOutput,
    VerificationOutput,
    VolunteerRegisterInput,
    VolunteerRegisterOutput,
)
from collector.throttles import UploadThrottle
from config.domain_errors import Invalid, NotFound
from config.two_factor import session_is_verified
from config.openapi import error_responses
from config.pagination import PageNumberPagination
from config.parsers import JSONParser  # depth-limited

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


class IsReviewer(permissions.BasePermission):
    message = "Only reviewers may do this."

    def has_permission(self, request, view):
        if not selectors.user_is_reviewer(request.user):
            return False
        # A staff session signed in without the code the account needs (from before STAFF_REQUIRE_2FA) may not
        # review through the API either, as it may not in the admin (config.two_factor).
        return (not isinstance(request.successful_authenticator, SessionAuthentication)
                or session_is_verified(request._request))


class VolunteerRegisterApi(APIView):
    permission_classes = [permissions.AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "anon_signup"

    @extend_schema(request=VolunteerRegisterInput, responses={201: VolunteerRegisterOutput}, tags=["volunteers"],
                   summary="Register a volunteer and get a token",
                   description="The display name is also the username for signing in on the website. "
                               "Without a password the token is the only way in.")
    def post(self, request):
        data = VolunteerRegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        volunteer, token = services.volunteer_register(**data.validated_data)
        return Response(
            VolunteerRegisterOutput({"id": volunteer.user_id, "display_name": volunteer.display_name, "token": token.key}).data,
            status=status.HTTP_201_CREATED,
        )


class TokenApi(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "anon_signup"

    @extend_schema(request=AuthTokenInput, responses={
        200: AuthTokenOutput,
        **error_responses("invalid", "invalid_credentials",
                          s400="Invalid input, or a username and password (and, for an account with a second "
                               "factor, `otp_token`) that do not sign in."),
    }, tags=["volunteers"], summary="Exchange a username and password for the account's token")
    def post(self, request):
        data = AuthTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        # Django's request, not DRF's wrapper: axes marks a lock-out on it for its middleware (config.lockout).
        user = authenticate(request._request, **data.validated_data)
        if user is None or not user.is_active:
            raise Invalid("Unable to sign in with those credentials.", code="invalid_credentials")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class MeApi(APIView):
    parser_classes = [JSONParser, FormParser]

    def _body(self, request):
        user = request.user
        volunteer = services.volunteer_get_or_create_for_user(user=user)
        return MeOutput({
            "id": user.pk,
            "display_name": volunteer.display_name,
            "email": user.email,
            "consent_training": volunteer.consent_training,
            "consent_public_credit": volunteer.consent_public_credit,
            "is_reviewer": selectors.user_is_reviewer(user),
            "date_joined": user.date_joined,
            "photos": selectors.photo_counts_for_user(user=user),
        }).data

    @extend_schema(responses={200: MeOutput}, tags=["volunteers"], summary="The signed-in volunteer's account")
    def get(self, request):
        return Response(self._body(request))

    @extend_schema(request=MeUpdateInput, responses={200: MeOutput}, tags=["volunteers"],
                   summary="Change the account's email or public-credit consent")
    def patch(self, request):
        data = MeUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        volunteer = services.volunteer_get_or_create_for_user(user=request.user)
        if "email" in data.validated_data:
            request.user.email = data.validated_data["email"]
            request.user.save(update_fields=["email"])
        if "consent_public_credit" in data.validated_data:
            volunteer.consent_public_credit = data.validated_data["consent_public_credit"]
            volunteer.save(update_fields=["consent_public_credit"])
        return Response(self._body(request))

    @extend_schema(
        responses={
            204: OpenApiResponse(description="Account deleted; photos withdrawn, files deleted"),
            **error_responses("staff_account", s403="A staff account: staff are removed by another admin, "
                                                    "not through this API. Nothing is deleted."),
        },
        tags=["volunteers"], summary="Delete the account",
    )
    def delete(self, request):
        services.volunteer_delete_own_account(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LabelListApi(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: LabelOutput(many=True)}, tags=["labels"],
                   summary="The labels photos are collected for, most needed first, with their progress",
                   description="Ranked by need: lowest recall of the model in service first (its latest "
                               "measurement), then furthest below the targets; each says why in `hint`.")
    def get(self, request):
        return Response(LabelOutput(selectors.label_list_ranked(), many=True).data)


class PhotoListCreateApi(APIView):
    parser_classes = [MultiPartParser]
    pagination_class = PageNumberPagination

    def get_throttles(self):
        if self.request.method == "POST":
            return [UploadThrottle()]
        return []

    @extend_schema(
        parameters=[PhotoStatusFilter],
        responses={200: PhotoOutput(many=True)},
        tags=["photos"], summary="The signed-in volunteer's photos, newest first",
    )
    def get(self, request):
        query = PhotoStatusFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        qs = selectors.photo_list_for_user(user=request.user, status=query.validated_data.get("status"))
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(PhotoOutput(page, many=True, context={"request": request}).data)

    @extend_schema(
        request={"multipart/form-data": PhotoUploadInput},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                                     pattern=IDEMPOTENCY_KEY_PATTERN,
                                     description="1 to 128 printable ASCII characters, no spaces (a UUID made per "
                                                 "photo): retries with the same key and bytes return the original "
                                                 "photo.")],
        responses={
            201: PhotoOutput,
            200: OpenApiResponse(PhotoOutput, description="The same image (or Idempotency-Key) was sent before: "
                                                          "the photo it made"),
            **error_responses(
                "too_large", "too_many_pixels", "unsupported_media_type", "unsupported", "unknown_label", "corrupt",
                "unknown_challenge", "challenge_not_open", "challenge_closed", "challenge_wrong_label",
                "idempotency_key_reused", "duplicate_other_label", "database_unavailable", "storage_unavailable",
                s400="Invalid fields or Idempotency-Key.",
                s413="The request, or the image's pixels, are over the limit.",
                s415="The body is not multipart/form-data, or the image is not JPEG, PNG, WebP or HEIC.",
                s409="These bytes were sent before by this volunteer with another label: `fields.existing_photo` "
                     "holds the id of the photo kept, `fields.existing_label` its label. Nothing new was recorded.",
                s422="An unknown or inactive label, a challenge that is not open or is for another label, an image "
                     "that cannot be decoded, an Idempotency-Key used for other bytes.",
                s503="The database or the file storage is unavailable; nothing was recorded. Retry later.",
            ),
        },
        tags=["photos"], summary="Upload a photo of a label",
    )
    def post(self, request):
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            raise Invalid("Idempotency-Key must be 1 to 128 printable ASCII characters.",
                          fields={"Idempotency-Key": ["Invalid."]})
        data = PhotoUploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = services.photo_create(
            user=request.user,
            image_file=v["image"],
            label_slug=v["label"],
            challenge_id=v.get("challenge"),
            captured_at=v.get("captured_at"),
            device_model=v.get("device_model", ""),
            app_version=v.get("app_version", ""),
            predicted_label=v.get("predicted_label", ""),
            predicted_confidence=v.get("predicted_confidence"),
            model_version=v.get("model_version"),
            idempotency_key=key,
        )
        return Response(
            PhotoOutput(result.photo, context={"request": request}).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class PhotoDetailApi(APIView):
    @extend_schema(responses={200: PhotoOutput}, tags=["photos"], summary="One of the signed-in volunteer's photos")
    def get(self, request, photo_id: int):
        photo = selectors.photo_get_for_user(user=request.user, photo_id=photo_id)
        if photo is None:
            raise NotFound("Not found.")
        return Response(PhotoOutput(photo, context={"request": request}).data)


class PhotoThumbnailApi(APIView):
    """The thumbnail's bytes: for the owner and reviewers, and for anyone once the photo is public."""

    permission_classes = [permissions.AllowAny]
    credentials_optional = "the owner and reviewers also get thumbnails of photos not yet public"

    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY}, tags=["photos"],
                   summary="A photo's thumbnail (JPEG)")
    def get(self, request, photo_id: int):
        photo = Photo.objects.filter(pk=photo_id).first()
        if photo is None or not photo.thumbnail_key or not selectors.photo_can_view(user=request.user, photo=photo):
            raise NotFound("Not found.")
        try:
            handle = storage.open_file(photo.thumbnail_key)
        except FileNotFoundError:
            raise NotFound("Not found.") from None
        response = FileResponse(handle, content_type="image/jpeg")
        public = selectors.photo_is_public(photo)
        response["Cache-Control"] = "public, max-age=86400" if public else "private, max-age=3600"
        return response


class PhotoReviewApi(APIView):
    permission_classes = [IsReviewer]
    parser_classes = [JSONParser, FormParser]

    @extend_schema(request=PhotoReviewInput, responses={
        200: PhotoOutput,
        **error_responses("permission_denied", "own_photo", "withdrawn",
                          s403="Not a reviewer, or the reviewer's own photo.",
                          s409="The photo was withdrawn by its volunteer."),
    }, tags=["review"], summary="Approve, reject or relabel a photo (reviewers)")
    def post(self, request, photo_id: int):
        data = PhotoReviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        photo = services.photo_decide(
            photo_id=photo_id, reviewer=request.user, decision=v["decision"], reason=v.get("reason", ""),
            label_slug=v.get("label") or None, note=v.get("note", ""),
        ).photo
        return Response(PhotoOutput(photo, context={"request": request}).data)


class VerificationNextApi(APIView):
    @extend_schema(responses={
        200: VerificationNextOutput,
        **error_responses("not_eligible", "nothing_to_verify",
                          s403="Not (yet) a verifier: fewer than COMMUNITY_REVIEW_MIN_APPROVED approved photos of "
                               "your own, or community review is off.",
                          s404="Nothing left for you to judge."),
    }, tags=["verification"], summary="The next photo for a community verifier to judge (blind)",
        description="A pending photo of another volunteer that you have not judged, and the label to judge. "
                    "Other verifiers' verdicts are never shown.")
    def get(self, request):
        item = services.verification_next(user=request.user)
        return Response(VerificationNextOutput({
            "photo": {"id": item.photo.pk, "thumbnail_url": request.build_absolute_uri(item.photo.thumbnail_url)},
            "label": item.label.slug,
        }).data)


class VerificationCreateApi(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(request=VerificationInput, responses={
        201: VerificationOutput,
        **error_responses("not_eligible", "own_photo", "already_verified", "already_decided",
                          s400="Invalid fields, or an unknown label.",
                          s403="Not a verifier, or your own photo.",
                          s404="No such photo.",
                          s409="You already judged this photo, or staff decided it meanwhile."),
    }, tags=["verification"], summary="Judge a photo's label: agree, disagree or unsure")
    def post(self, request):
        data = VerificationInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = services.verification_submit(user=request.user, photo_id=v["photo"], verdict=v["verdict"],
                                              label_slug=v.get("label") or None)
        return Response(VerificationOutput(result.verification).data, status=status.HTTP_201_CREATED)


class ReviewQueueApi(APIView):
    permission_classes = [IsReviewer]
    pagination_class = PageNumberPagination

    @extend_schema(parameters=[ReviewQueueFilter], responses={200: ReviewQueueItemOutput(many=True)},
                   tags=["review"], summary="What a reviewer decides next (reviewers)",
                   description="Pending photos that are not yours, disputed ones first, then oldest first; with "
                               "`flag=likely_mislabeled`, the approved photos the nightly label audit sent back, "
                               "most likely mislabelled first, with `suggested_label` and `score`.")
    def get(self, request):
        query = ReviewQueueFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        v = query.validated_data
        label = selectors.label_get(slug=v["label"]) if v.get("label") else None
        qs = selectors.review_queue(user=request.user, label=label, flag=v.get("flag", "")).select_related(
            "label", "audit_suggested_label", "crowd_label")
        if v.get("label") and label is None:
            qs = qs.none()
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(ReviewQueueItemOutput(page, many=True, context={"request": request}).data)
