"""HTTP API of the newsletter: thin views that validate, call a service, serialize."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.errors import ApiError
from newsletter import selectors, services

_SUBSCRIBE_ANSWER = ("If this address can receive the newsletter, a confirmation email is on its way. "
                     "Open its link to confirm.")


class SubscribeInput(serializers.Serializer):
    email = serializers.CharField(max_length=254, required=False, allow_blank=True,
                                  help_text="Optional for a signed-in volunteer whose account has an email")


class DetailOutput(serializers.Serializer):
    detail = serializers.CharField()


class TokenInput(serializers.Serializer):
    token = serializers.CharField(max_length=300)


class SubscriptionOutput(serializers.Serializer):
    status = serializers.CharField()


class EditionListOutput(serializers.Serializer):
    id = serializers.IntegerField()
    subject = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    web_url = serializers.CharField()


class EditionDetailOutput(EditionListOutput):
    introduction = serializers.CharField()
    content = serializers.JSONField()


def _edition_row(edition) -> dict:
    from django.urls import reverse

    return {"id": edition.pk, "subject": edition.subject, "period_start": edition.period_start,
            "period_end": edition.period_end, "sent_at": edition.sent_at, "introduction": edition.introduction,
            "content": edition.content,
            "web_url": reverse("newsletter-archive-detail", kwargs={"edition_id": edition.pk})}


class SubscribeApi(APIView):
    """Start a double opt-in. The answer is the same whether the address is new, pending or already confirmed."""

    permission_classes = [permissions.AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "newsletter_subscribe"

    @extend_schema(request=SubscribeInput, responses={202: DetailOutput}, tags=["newsletter"])
    def post(self, request):
        data = SubscribeInput(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data.get("email") or (request.user.email if request.user.is_authenticated else "")
        services.subscriber_subscribe(email=email, user=request.user)
        return Response({"detail": _SUBSCRIBE_ANSWER}, status=status.HTTP_202_ACCEPTED)


class ConfirmApi(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes = []

    @extend_schema(request=TokenInput, responses={200: SubscriptionOutput}, tags=["newsletter"])
    def post(self, request):
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscriber = services.subscriber_confirm(token=data.validated_data["token"])
        if subscriber is None or subscriber.status != "confirmed":
            raise ApiError(400, "invalid_token", "This confirmation link is invalid or has expired.",
                           {"token": ["Invalid or expired."]})
        return Response({"status": subscriber.status})


class UnsubscribeApi(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes = []

    @extend_schema(request=TokenInput, responses={200: SubscriptionOutput}, tags=["newsletter"])
    def post(self, request):
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscriber = services.subscriber_unsubscribe(token=data.validated_data["token"])
        if subscriber is None:
            raise ApiError(400, "invalid_token", "This unsubscribe link is invalid.", {"token": ["Invalid."]})
        return Response({"status": subscriber.status})


class EditionListApi(APIView):
    """The public archive: the 200 latest editions that have gone out, newest first."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: EditionListOutput(many=True)}, tags=["newsletter"])
    def get(self, request):
        editions = selectors.editions_public()[:200]
        return Response(EditionListOutput([_edition_row(e) for e in editions], many=True).data)


class EditionDetailApi(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: EditionDetailOutput}, tags=["newsletter"])
    def get(self, request, edition_id: int):
        edition = selectors.edition_get_public(edition_id=edition_id)
        if edition is None:
            raise ApiError(404, "not_found", "Not found.")
        return Response(EditionDetailOutput(_edition_row(edition)).data)
