from django.urls import path

from challenges import apis

urlpatterns = [
    path("challenges/", apis.ChallengeListApi.as_view(), name="challenge-list"),
    path("challenges/today/", apis.ChallengeTodayApi.as_view(), name="challenge-today"),
    path("leaderboard/", apis.LeaderboardApi.as_view(), name="leaderboard"),
    path("votes/<int:photo_id>/", apis.VoteApi.as_view(), name="photo-vote"),
]
