from django.urls import path

from collector import apis

urlpatterns = [
    path("volunteers/", apis.VolunteerRegisterApi.as_view(), name="volunteer-register"),
    path("auth/token/", apis.TokenApi.as_view(), name="auth-token"),
    path("me/", apis.MeApi.as_view(), name="me"),
    path("labels/", apis.LabelListApi.as_view(), name="label-list"),
    path("photos/", apis.PhotoListCreateApi.as_view(), name="photo-list"),
    path("photos/<int:photo_id>/", apis.PhotoDetailApi.as_view(), name="photo-detail"),
    path("photos/<int:photo_id>/thumbnail/", apis.PhotoThumbnailApi.as_view(), name="photo-thumbnail"),
    path("photos/<int:photo_id>/review/", apis.PhotoReviewApi.as_view(), name="photo-review"),
    path("review/queue/", apis.ReviewQueueApi.as_view(), name="review-queue"),
    path("verifications/", apis.VerificationCreateApi.as_view(), name="verification-create"),
    path("verifications/next/", apis.VerificationNextApi.as_view(), name="verification-next"),
]
