"""HTTP API of the newsletter: thin views that validate, call a service, serialize."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from config.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.domain_errors import Invalid, NotFound
from config.fields import EmailOrEmptyField
from config.openapi import error_responses
from newsletter import selectors, services

_SUBSCRIBE_ANSWER = ("If this address can receive the newsletter, a confirmation email is on its way. "
                     "Open its link to confirm.")


class SubscribeInput(serializers.Serializer):
    email = EmailOrEmptyField(max_length=254, required=False, allow_blank=True,
                              help_text="Optional for a signed-in volunteer whose account has an email")


class DetailOutput(serializers.Serializer):
    detail = serializers.CharField(help_text="What happens next, for people.")


class TokenInput(serializers.Serializer):
    token = serializers.CharField(max_length=300, help_text="The token from the link in the email.")


class SubscriptionOutput(serializers.Serializer):
    status = serializers.CharField(help_text="The subscription's status now: confirmed or unsubscribed.")


class EditionListOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The edition's id.")
    subject = serializers.CharField(help_text="The email's subject.")
    period_start = serializers.DateTimeField(help_text="Start of the period the edition covers.")
    period_end = serializers.DateTimeField(help_text="End of the period the edition covers.")
    sent_at = serializers.DateTimeField(allow_null=True, help_text="When it was sent.")
    web_url = serializers.CharField(help_text="Path of the edition's page in the web archive.")


class EditionDetailOutput(EditionListOutput):
    introduction = serializers.CharField(help_text="The editor's introduction; may be empty.")
    content = serializers.JSONField(help_text="The edition's sections, composed once for its period, as data.")


def _edition_row(edition) -> dict:
    from django.urls import reverse

    return {"id": edition.pk, "subject": edition.subject, "period_start": edition.period_start,
            "period_end": edition.period_end, "sent_at": edition.sent_at, "introduction": edition.introduction,
            "content": edition.content,
            "web_url": reverse("newsletter-archive-detail", kwargs={"edition_id": edition.pk})}


class SubscribeApi(APIView):
    """Start a double opt-in. The answer is the same whether the address is new, pending or already confirmed."""

    permission_classes = [permissions.AllowAny]
    credentials_optional = "the account's email is used when the body has none"
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "newsletter_subscribe"

    @extend_schema(request=SubscribeInput, responses={202: DetailOutput}, tags=["newsletter"],
                   summary="Subscribe an email address to the newsletter (double opt-in)")
    def post(self, request):
        data = SubscribeInput(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data.get("email") or (request.user.email if request.user.is_authenticated else "")
        services.subscriber_subscribe(email=email, user=request.user)
        return Response({"detail": _SUBSCRIBE_ANSWER}, status=status.HTTP_202_ACCEPTED)


class ConfirmApi(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes = []

    @extend_schema(request=TokenInput, responses={
        200: SubscriptionOutput,
        **error_responses("invalid", "invalid_token",
                          s400="Invalid input, or a confirmation token that is invalid or expired."),
    }, tags=["newsletter"], summary="Confirm a subscription with the token from the confirmation email")
    def post(self, request):
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscriber = services.subscriber_confirm(token=data.validated_data["token"])
        if subscriber is None or subscriber.status != "confirmed":
            raise Invalid("This confirmation link is invalid or has expired.", code="invalid_token",
                          fields={"token": ["Invalid or expired."]})
        return Response({"status": subscriber.status})


class UnsubscribeApi(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes = []

    @extend_schema(request=TokenInput, responses={
        200: SubscriptionOutput,
        **error_responses("invalid", "invalid_token", s400="Invalid input, or an unsubscribe token that is invalid."),
    }, tags=["newsletter"], summary="Unsubscribe with the token from a newsletter email")
    def post(self, request):
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscriber = services.subscriber_unsubscribe(token=data.validated_data["token"])
        if subscriber is None:
            raise Invalid("This unsubscribe link is invalid.", code="invalid_token", fields={"token": ["Invalid."]})
        return Response({"status": subscriber.status})


class EditionListApi(APIView):
    """The public archive: the 200 latest editions that have gone out, newest first."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: EditionListOutput(many=True)}, tags=["newsletter"],
                   summary="The newsletter archive: editions sent, newest first")
    def get(self, request):
        editions = selectors.editions_public()[:200]
        return Response(EditionListOutput([_edition_row(e) for e in editions], many=True).data)


class EditionDetailApi(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: EditionDetailOutput}, tags=["newsletter"], summary="One sent newsletter edition")
    def get(self, request, edition_id: int):
        edition = selectors.edition_get_public(edition_id=edition_id)
        if edition is None:
            raise NotFound("Not found.")
        return Response(EditionDetailOutput(_edition_row(edition)).data)
