"""HTTP API of the challenges app: thin views over challenges.selectors and challenges.services."""

from __future__ import annotations

from urllib.parse import urlencode

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from challenges import selectors, services
from challenges.serializers import (
    ChallengeListOutput,
    ChallengeOutput,
    LeaderboardOutput,
    LeaderboardQuery,
    VoteOutput,
)
from config.domain_errors import NotFound
from config.openapi import error_responses


class ChallengeTodayApi(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        responses={200: ChallengeOutput, **error_responses("no_challenge", s404="No challenge is open right now.")},
        tags=["challenges"], summary="Today's open challenge",
    )
    def get(self, request):
        now = timezone.now()
        challenge = selectors.challenge_today(now=now)
        if challenge is None:
            raise NotFound("There is no challenge open right now.", code="no_challenge")
        return Response(ChallengeOutput(challenge, context={"now": now}).data)


class ChallengeListApi(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        responses={200: ChallengeListOutput},
        tags=["challenges"], summary="Recent and planned challenges",
        description="Challenges of the last 30 days and the next 7 (planned ahead), newest first.",
    )
    def get(self, request):
        now = timezone.now()
        challenges = selectors.challenge_list(now=now)
        return Response({"results": ChallengeOutput(challenges, many=True, context={"now": now}).data})


def _row(row) -> dict | None:
    if row is None:
        return None
    return {"rank": row.rank, "display_name": row.display_name, "points": row.points,
            "approved_photos": row.approved_photos}


class LeaderboardApi(APIView):
    permission_classes = [permissions.AllowAny]
    credentials_optional = "the caller's own row comes with the page (`own`)"

    @extend_schema(parameters=[LeaderboardQuery], responses={
        200: LeaderboardOutput,
        **error_responses("not_found", "invalid_page", s404="No such challenge (`challenge`), or a page past the last."),
    }, tags=["leaderboards"], summary="A page of the leaderboard of a period or a challenge")
    def get(self, request):
        query = LeaderboardQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        page_no, size = q["page"], q["page_size"]
        try:
            page = selectors.leaderboard(
                period=q["period"], challenge_id=q.get("challenge"), offset=(page_no - 1) * size, limit=size,
                viewer=request.user if request.user.is_authenticated else None,
            )
        except LookupError as exc:
            raise NotFound(str(exc), fields={"challenge": ["Unknown challenge."]}) from None
        if page_no > 1 and page.offset >= page.total:
            raise NotFound(f"No such page: this board has {page.total} rows.", code="invalid_page",
                           fields={"page": ["Past the end."]})

        def link(n):
            params = {k: v for k, v in request.query_params.items()}
            params["page"] = n
            return request.build_absolute_uri(request.path) + "?" + urlencode(params)

        return Response({
            "period": page.period,
            "period_start": page.period_start,
            "period_end": page.period_end,
            "challenge": page.challenge.pk if page.challenge else None,
            "count": page.total,
            "page": page_no,
            "page_size": size,
            "next": link(page_no + 1) if page_no * size < page.total else None,
            "previous": link(page_no - 1) if page_no > 1 else None,
            "results": [_row(r) for r in page.rows],
            "own_row": _row(page.own_row),
        })


class VoteApi(APIView):
    """POST votes for a photo, DELETE takes the vote back. Both are idempotent."""

    @extend_schema(
        request=None,
        responses={
            201: VoteOutput, 200: OpenApiResponse(VoteOutput, description="Already voted: nothing changed"),
            **error_responses("own_photo", "not_approved", s403="The caller's own photo.",
                              s404="No such photo, or not one the caller may see.",
                              s409="The photo is not approved."),
        },
        tags=["votes"], summary="Vote for an approved photo",
    )
    def post(self, request, photo_id: int):
        result = services.vote_cast(user=request.user, photo_id=photo_id)
        return Response(
            {"photo_id": result.photo_id, "votes": result.votes, "voted": result.voted},
            status=status.HTTP_201_CREATED if result.changed else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses={200: VoteOutput}, tags=["votes"], summary="Take a vote back")
    def delete(self, request, photo_id: int):
        result = services.vote_withdraw(user=request.user, photo_id=photo_id)
        return Response({"photo_id": result.photo_id, "votes": result.votes, "voted": result.voted})


