"""Input and output shapes of the challenges API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from challenges.periods import PERIODS
from config.fields import QuerySerializer


class ChallengeOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The challenge's id: send it as `challenge` with an upload to enter.")
    date = serializers.DateField(help_text="The day of the challenge (in TIME_ZONE).")
    label = serializers.CharField(source="label.slug", help_text="The slug of the label to photograph.")
    label_name = serializers.CharField(source="label.name", help_text="The label's name for people.")
    title = serializers.CharField(help_text="The challenge's title.")
    prompt = serializers.CharField(help_text="A short call to action.")
    description = serializers.CharField(help_text="What makes a good entry; may be empty.")
    starts_at = serializers.DateTimeField(help_text="When entries open.")
    ends_at = serializers.DateTimeField(help_text="When entries close.")
    bonus_points = serializers.IntegerField(help_text="Extra points for each approved entry.")
    status = serializers.SerializerMethodField(help_text="upcoming, open or closed at the time of the request.")

    def get_status(self, instance) -> str:
        return instance.status_at(self.context["now"])


class ChallengeListOutput(serializers.Serializer):
    results = ChallengeOutput(many=True, help_text="Newest first.")


class LeaderboardQuery(QuerySerializer):
    period = serializers.ChoiceField(choices=list(PERIODS), default="day",
                                     help_text="day, week or month containing now (in TIME_ZONE), or all time.")
    challenge = serializers.IntegerField(required=False, min_value=1,
                                         help_text="A challenge id: its board instead of the period's.")
    page = serializers.IntegerField(required=False, min_value=1, default=1, help_text="Page number, from 1.")
    # max_value puts the limit in the schema (generated clients know it); validate_page_size applies the
    # setting as it is now.
    page_size = serializers.IntegerField(required=False, min_value=1, default=50,
                                         max_value=settings.LEADERBOARD_MAX_PAGE_SIZE,
                                         error_messages={"max_value": "At most {max_value}."},
                                         help_text="Rows per page, at most LEADERBOARD_MAX_PAGE_SIZE.")

    def validate_page_size(self, value):
        limit = settings.LEADERBOARD_MAX_PAGE_SIZE
        if value > limit:
            raise serializers.ValidationError(f"At most {limit}.")
        return value


class LeaderboardRowOutput(serializers.Serializer):
    rank = serializers.IntegerField(allow_null=True, help_text="Null: no points in this period yet.")
    display_name = serializers.CharField(help_text='The public name; "Volunteer #<n>" without consent to public credit.')
    points = serializers.IntegerField(help_text="Points earned in the period (or the challenge).")
    approved_photos = serializers.IntegerField(help_text="Approved photos in the period (or the challenge).")


class LeaderboardOutput(serializers.Serializer):
    period = serializers.ChoiceField(choices=[*PERIODS, "challenge"], help_text="The board's period, or challenge.")
    period_start = serializers.DateTimeField(allow_null=True, help_text="Start of the period; null for all time.")
    period_end = serializers.DateTimeField(allow_null=True, help_text="End of the period; null for all time.")
    challenge = serializers.IntegerField(allow_null=True, help_text="The challenge's id for a challenge board.")
    count = serializers.IntegerField(help_text="Volunteers ranked in this period.")
    page = serializers.IntegerField(help_text="This page's number.")
    page_size = serializers.IntegerField(help_text="Rows per page.")
    next = serializers.CharField(allow_null=True, help_text="URL of the next page; null on the last.")
    previous = serializers.CharField(allow_null=True, help_text="URL of the previous page; null on the first.")
    results = LeaderboardRowOutput(many=True, help_text="The rows of this page, best first.")
    own_row = LeaderboardRowOutput(allow_null=True, help_text="The caller's row wherever they rank; null when signed out.")


class VoteOutput(serializers.Serializer):
    photo_id = serializers.IntegerField(help_text="The photo voted for.")
    votes = serializers.IntegerField(help_text="Votes the photo has now.")
    voted = serializers.BooleanField(help_text="Whether the caller's vote is on it now.")
