"""The volunteers' web pages: server-rendered, readable without JavaScript.

Views stay thin: they read through selectors, write through services and
render a template. Writes made from a page (sign-up, votes, the no-JS upload)
go through the same services as the API, so both answer the same way.
"""

from __future__ import annotations

import re
import uuid

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from collector import selectors as collector_selectors
from collector import services as collector_services
from collector.models import PhotoStatus
from config.errors import ApiError

# --- helpers ----------------------------------------------------------------


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """The stored thumbnail's size, known without opening it: width/height on <img> avoid layout jumps."""
    longest = settings.PHOTO_THUMBNAIL_SIZE
    if not width or not height:
        return longest, longest
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


def _api_error_message(exc: ApiError) -> str:
    return str(exc.detail)


# --- sign-up ----------------------------------------------------------------


class SignUpForm(forms.Form):
    display_name = forms.RegexField(
        regex=re.compile(r"^[\w.@+-]{2,40}$"),
        max_length=40,
        label="Display name",
        help_text="2 to 40 letters, digits or . @ + - _ (no spaces). You sign in with it.",
        error_messages={"invalid": "Use 2 to 40 letters, digits or . @ + - _ (no spaces)."},
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    password = forms.CharField(
        label="Password", min_length=8, max_length=128, help_text="At least 8 characters.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    email = forms.EmailField(
        label="Email (optional)", required=False, max_length=254,
        help_text="Only for the newsletter and to reach you about your photos.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    consent_training = forms.BooleanField(
        label="My photos may be used to train the image recognition models.", required=True,
        error_messages={"required": "Photos are collected to train models: please agree to take part."},
    )
    consent_public_credit = forms.BooleanField(
        label="Show my display name on leaderboards and next to my photos.", required=False,
        help_text="Without it you appear as \u201cVolunteer #number\u201d and your photos are not shown publicly.",
    )

    def clean_password(self):
        password = self.cleaned_data["password"]
        validate_password(password)
        return password


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("pages:me")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            volunteer, _token = collector_services.volunteer_register(**form.cleaned_data)
        except ApiError as exc:
            for field, errors in (exc.fields or {}).items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
            if not exc.fields:
                form.add_error(None, _api_error_message(exc))
        else:
            login(request, volunteer.user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {volunteer.display_name}! Take your first photo.")
            return redirect(_safe_next(request, "/capture/"))
    return render(request, "pages/signup.html", {"form": form, "next": _safe_next(request, "")}, status=400 if form.errors else 200)


# --- the volunteer's own page ---------------------------------------------------


@login_required
def me(request):
    photos = list(collector_selectors.photo_list_for_user(user=request.user)[:200])
    for photo in photos:
        photo.thumb_width, photo.thumb_height = thumbnail_size(photo.width, photo.height)
    volunteer = collector_selectors.volunteer_for_user(request.user)
    return render(request, "pages/me.html", {
        "photos": photos,
        "volunteer": volunteer,
        "counts": collector_selectors.photo_counts_for_user(user=request.user),
        "history": [],
    })


# --- the camera page ----------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def capture(request):
    """The camera page. With JavaScript the upload goes to POST /api/v1/photos/ (progress, retries);
    without it the form posts here and the same service stores the photo."""
    labels = list(collector_selectors.label_list_active())
    challenge = None
    result = None
    error = None
    status = 200
    if request.method == "POST":
        result, error = _capture_post(request, challenge)
        status = 201 if result and result.created else (200 if result else 400)
    thumb = thumbnail_size(result.photo.width, result.photo.height) if result else None
    return render(request, "pages/capture.html", {
        "labels": labels,
        "challenge": challenge,
        "selected": request.POST.get("target") or request.GET.get("target") or ("challenge" if challenge else ""),
        "result": result.photo if result else None,
        "result_created": bool(result and result.created),
        "thumb": thumb,
        "error": error,
        "idempotency_key": uuid.uuid4().hex,
        "max_bytes": settings.PHOTO_MAX_BYTES,
    }, status=status)


def _capture_post(request, challenge):
    target = request.POST.get("target", "")
    image = request.FILES.get("image")
    if image is None:
        return None, "Choose or take a photo first."
    if target == "challenge":
        if challenge is None:
            return None, "There is no open challenge right now; pick a label."
        label_slug, challenge_id = challenge.label.slug, challenge.pk
    elif target:
        label_slug, challenge_id = target, None
    else:
        return None, "Pick what the photo shows."
    key = request.POST.get("idempotency_key") or None
    try:
        result = collector_services.photo_create(
            user=request.user, image_file=image, label_slug=label_slug, challenge_id=challenge_id,
            idempotency_key=key[:128] if key else None,
        )
    except ApiError as exc:
        return None, _api_error_message(exc)
    return result, None


PHOTO_STATUS_CSS = {
    PhotoStatus.PENDING: "pending",
    PhotoStatus.APPROVED: "approved",
    PhotoStatus.REJECTED: "rejected",
    PhotoStatus.WITHDRAWN: "withdrawn",
}
