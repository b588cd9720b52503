"""Input and output shapes of the challenges API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from challenges.periods import PERIODS


class ChallengeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateField()
    label = serializers.CharField(source="label.slug")
    label_name = serializers.CharField(source="label.name")
    title = serializers.CharField()
    prompt = serializers.CharField()
    description = serializers.CharField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    bonus_points = serializers.IntegerField()
    status = serializers.SerializerMethodField(help_text="upcoming, open or closed at the time of the request.")

    def get_status(self, instance) -> str:
        return instance.status_at(self.context["now"])


class ChallengeListOutput(serializers.Serializer):
    results = ChallengeOutput(many=True)


class LeaderboardQuery(serializers.Serializer):
    period = serializers.ChoiceField(choices=list(PERIODS), default="day",
                                     help_text="day, week or month containing now (in TIME_ZONE), or all time.")
    challenge = serializers.IntegerField(required=False, min_value=1,
                                         help_text="A challenge id: its board instead of the period's.")
    page = serializers.IntegerField(required=False, min_value=1, default=1)
    page_size = serializers.IntegerField(required=False, min_value=1, default=50)

    def validate_page_size(self, value):
        limit = settings.LEADERBOARD_MAX_PAGE_SIZE
        if value > limit:
            raise serializers.ValidationError(f"At most {limit}.")
        return value


class LeaderboardRowOutput(serializers.Serializer):
    rank = serializers.IntegerField(allow_null=True, help_text="Null: no points in this period yet.")
    display_name = serializers.CharField(help_text='The public name; "Volunteer #<n>" without consent to public credit.')
    points = serializers.IntegerField()
    approved_photos = serializers.IntegerField()


class LeaderboardOutput(serializers.Serializer):
    period = serializers.ChoiceField(choices=[*PERIODS, "challenge"])
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    challenge = serializers.IntegerField(allow_null=True)
    count = serializers.IntegerField(help_text="Volunteers ranked in this period.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = LeaderboardRowOutput(many=True)
    own_row = LeaderboardRowOutput(allow_null=True, help_text="The caller's row wherever they rank; null when signed out.")


class VoteOutput(serializers.Serializer):
    photo_id = serializers.IntegerField()
    votes = serializers.IntegerField(help_text="Votes the photo has now.")
    voted = serializers.BooleanField(help_text="Whether the caller's vote is on it now.")
