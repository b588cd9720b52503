"""Web pages for volunteers (server-rendered; see docs/pages.md)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from pages import app_views, views

app_name = "pages"

urlpatterns = [
    path("", views.home, name="home"),
    path("leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("gallery/", views.gallery, name="gallery"),
    path("gallery/<int:photo_id>/vote/", views.vote, name="vote"),
    path("challenges/", views.challenges_page, name="challenges"),
    path("signup/", views.signup, name="signup"),
    path("signin/", views.SignInView.as_view(), name="signin"),
    path("signout/", auth_views.LogoutView.as_view(next_page="/"), name="signout"),
    path("me/", views.me, name="me"),
    path("capture/", views.capture, name="capture"),
    path("verify/", views.verify, name="verify"),
    path("sw.js", app_views.service_worker, name="service-worker"),
    path("manifest.webmanifest", app_views.web_manifest, name="web-manifest"),
]
