from django.urls import path

from newsletter import apis

urlpatterns = [
    path("subscribe/", apis.SubscribeApi.as_view(), name="newsletter-subscribe"),
    path("confirm/", apis.ConfirmApi.as_view(), name="newsletter-confirm"),
    path("unsubscribe/", apis.UnsubscribeApi.as_view(), name="newsletter-unsubscribe"),
    path("editions/", apis.EditionListApi.as_view(), name="newsletter-edition-list"),
    path("editions/<int:edition_id>/", apis.EditionDetailApi.as_view(), name="newsletter-edition-detail"),
]
