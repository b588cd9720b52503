"""Newsletter web pages, included at /newsletter/ by config/urls.py."""

from django.urls import path

from newsletter import views

urlpatterns = [
    path("", views.subscribe_page, name="newsletter-subscribe-page"),
    path("confirm/<str:token>/", views.confirm_page, name="newsletter-confirm-page"),
    path("unsubscribe/<str:token>/", views.unsubscribe_page, name="newsletter-unsubscribe-page"),
    path("archive/", views.archive_page, name="newsletter-archive"),
    path("archive/<int:edition_id>/", views.archive_detail_page, name="newsletter-archive-detail"),
]
