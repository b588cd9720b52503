"""The volunteers' web pages: server-rendered, readable without JavaScript.

Views stay thin: they read through selectors, write through services and
render a template. Writes made from a page (sign-up, votes, the no-JS upload)
go through the same services as the API, so both answer the same way.
This app is the top floor: it reads collector and challenges through their
selectors and writes through their services, never through another app's
``apis`` module (docs/pages.md).
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from config.throttling import ScopedRateThrottle

from challenges import periods
from challenges import selectors as challenge_selectors
from challenges import services as challenge_services
from collector import selectors as collector_selectors
from collector import services as collector_services
from collector.throttles import UploadThrottle
from config.domain_errors import DomainError
from config.errors import status_for
from pages.forms import SignUpForm

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


def _throttle_wait(request, throttle, scope: str = "") -> int | None:
    """Seconds to wait when this client has used up the throttle's rate, else None.

    The same DRF throttles (and cache buckets) as the API: signing up, signing
    in and uploading through the pages and through /api/v1/ share one budget.
    """
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope)):
        return None
    return max(1, int(throttle.wait() or 1))


def _too_many(wait: int) -> str:
    minutes = max(1, round(wait / 60))
    return f"Too many attempts from your connection. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


# --- public pages -------------------------------------------------------------

LEADERBOARD_PAGE_SIZE = 50
HOME_BOARD_SIZE = 10
GALLERY_SIZE = 48
PERIOD_TABS = [("day", "Today"), ("week", "This week"), ("month", "This month"), ("all", "All time")]
GALLERY_TABS = [("all", "All time"), ("month", "This month"), ("week", "This week")]


def home(request):
    now = timezone.now()
    challenge = challenge_selectors.challenge_today(now=now)
    board = challenge_selectors.leaderboard(
        period="day", challenge_id=challenge.pk if challenge else None, limit=HOME_BOARD_SIZE, viewer=request.user,
        now=now,
    )
    if request.GET.get("fragment") == "board":  # static/js/live.js refreshing the board alone
        return render(request, "pages/_home_board.html", {
            "challenge": challenge, "board": board, "board_own_outside": _own_outside(board),
        })
    featured = challenge_selectors.featured_photos(limit=6)
    best = [] if featured else challenge_selectors.best_photos(limit=6)
    return render(request, "pages/home.html", {
        "challenge": challenge,
        # No challenge: the labels asked for, most needed first (the order the rotation picks by).
        "needed_labels": [] if challenge else challenge_selectors.labels_most_needed(),
        "board": board,
        "board_own_outside": _own_outside(board),
        "featured": featured,
        "best": best,
        "thumb_size": settings.PHOTO_THUMBNAIL_SIZE,
    })


def _own_outside(board) -> bool:
    """The viewer's own row is shown under the table when it is not on this page."""
    own = board.own_row
    return bool(own and not any(row.is_viewer for row in board.rows))


def leaderboard_page(request):
    period = request.GET.get("period") or "day"
    challenge_id = _positive_int(request.GET.get("challenge"))
    page_number = _positive_int(request.GET.get("page")) or 1
    if request.GET.get("challenge") and challenge_id is None:
        raise Http404("No such challenge.")
    try:
        board = challenge_selectors.leaderboard(
            period=period, challenge_id=challenge_id, offset=(page_number - 1) * LEADERBOARD_PAGE_SIZE,
            limit=LEADERBOARD_PAGE_SIZE, viewer=request.user,
        )
    except (ValueError, LookupError):
        raise Http404("No such leaderboard.") from None
    if page_number > 1 and board.offset >= board.total:
        raise Http404("No such page.")
    query = f"challenge={challenge_id}" if challenge_id else f"period={board.period}"
    return render(request, "pages/leaderboard.html", {
        "board": board,
        "board_own_outside": _own_outside(board),
        "tabs": PERIOD_TABS,
        "period": board.period,
        "challenge": board.challenge,
        "today_challenge": challenge_selectors.challenge_today(),
        "time_zone": settings.TIME_ZONE,
        "page_number": page_number,
        "previous_url": f"?{query}&page={page_number - 1}" if page_number > 1 else "",
        "next_url": f"?{query}&page={page_number + 1}" if board.offset + len(board.rows) < board.total else "",
    })


def _positive_int(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def gallery(request):
    period = request.GET.get("period") or "all"
    if period not in dict(GALLERY_TABS):
        raise Http404("No such gallery.")
    since = None if period == "all" else periods.period_at(period, timezone.now()).start
    photos = challenge_selectors.best_photos(since=since, limit=GALLERY_SIZE)
    voted = challenge_selectors.user_voted(request.user, [p.photo_id for p in photos])
    return render(request, "pages/gallery.html", {
        "photos": photos,
        "voted": voted,
        "tabs": GALLERY_TABS,
        "period": period,
        "thumb_size": settings.PHOTO_THUMBNAIL_SIZE,
        "next": request.get_full_path(),
    })


@require_POST
def vote(request, photo_id: int):
    """The gallery's vote button: a plain form POST (works without JavaScript), then back to the gallery."""
    back = _safe_next(request, "/gallery/")
    if not request.user.is_authenticated:
        messages.info(request, "Sign in to vote for photos.")
        return redirect(f"/signin/?next={quote(back)}")
    action = request.POST.get("action", "vote")
    try:
        if action == "withdraw":
            challenge_services.vote_withdraw(user=request.user, photo_id=photo_id)
            messages.success(request, "Your vote was taken back.")
        elif action == "vote":
            challenge_services.vote_cast(user=request.user, photo_id=photo_id)
            messages.success(request, "Thank you for your vote!")
        else:
            messages.error(request, "Unknown action.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(f"{back}#photo-{photo_id}")


def challenges_page(request):
    now = timezone.now()
    listed = list(challenge_selectors.challenge_list(past_days=30, upcoming_days=7, now=now))
    results = {}
    past = [c for c in listed if c.status_at(now) == "closed"]
    if past:
        results = {r.challenge.pk: r for r in challenge_selectors.challenge_winners(
            since=min(c.date for c in past), until=max(c.date for c in past), top=3)}
    return render(request, "pages/challenges.html", {
        "open": [c for c in listed if c.status_at(now) == "open"],
        "upcoming": sorted((c for c in listed if c.status_at(now) == "upcoming"), key=lambda c: c.date),
        "past": [(c, results.get(c.pk)) for c in past],
    })


# --- sign-up and sign-in -------------------------------------------------------


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("pages:me")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and (wait := _throttle_wait(request, ScopedRateThrottle(), "anon_signup")):
        form = SignUpForm(initial={k: v for k, v in request.POST.items() if k in ("display_name", "email")})
        return render(request, "pages/signup.html", {"form": form, "next": _safe_next(request, ""),
                                                     "throttled": _too_many(wait)}, status=429)
    if request.method == "POST" and form.is_valid():
        try:
            volunteer, _token = collector_services.volunteer_register(**form.cleaned_data)
        except DomainError as exc:
            for field, errors in (exc.fields or {}).items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            login(request, volunteer.user, backend="config.two_factor.SecondFactorBackend")
            messages.success(request, f"Welcome, {volunteer.display_name}! Take your first photo.")
            return redirect(_safe_next(request, "/capture/"))
    return render(request, "pages/signup.html", {"form": form, "next": _safe_next(request, "")}, status=400 if form.errors else 200)


class SignInView(auth_views.LoginView):
    """Django's sign-in, with sign-in attempts counted against the API's anon_signup rate."""

    template_name = "registration/signin.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        wait = _throttle_wait(request, ScopedRateThrottle(), "anon_signup")
        if wait:
            form = self.get_form()
            form.is_bound = False  # show the form again, empty of errors
            context = self.get_context_data(form=form, throttled=_too_many(wait))
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)


# --- the volunteer's own page ---------------------------------------------------


MY_PHOTOS_PAGE_SIZE = 50


@login_required
def me(request):
    page = Paginator(collector_selectors.photo_list_for_user(user=request.user), MY_PHOTOS_PAGE_SIZE).get_page(
        request.GET.get("page"))
    photos = list(page.object_list)
    predictions = collector_selectors.photo_server_predictions(photo_ids=[p.pk for p in photos])
    names = {label.slug: label.name for label in collector_selectors.label_list_active()}
    for photo in photos:
        photo.thumb_width, photo.thumb_height = thumbnail_size(photo.width, photo.height)
        prediction = predictions.get(photo.pk)
        # "The model thought it was a rose": the server's own prediction (what the stumped bonus goes by).
        photo.model_thought = (names.get(prediction.label, prediction.label)
                               if prediction and prediction.label != photo.label.slug else None)
    volunteer = collector_selectors.volunteer_for_user(request.user)
    return render(request, "pages/me.html", {
        "photos": photos,
        "page": page,
        "volunteer": volunteer,
        "counts": collector_selectors.photo_counts_for_user(user=request.user),
        "points_total": challenge_selectors.points_total(user=request.user),
        "history": challenge_selectors.points_history(user=request.user, limit=100),
    })


# --- verifying other volunteers' photos (the crowd verifies; docs/review.md) -------------------------

VERDICT_BUTTONS = [("agree", "Yes, it is", "y"), ("disagree", "No, it is not", "n"), ("unsure", "Not sure", "u")]


@login_required
@require_http_methods(["GET", "POST"])
def verify(request):
    """One photo at a time, blind: "Is this a tulip?" Yes / No (optionally the right label) / Not sure.
    A plain form (works without JavaScript); verify.js adds the keys y, n, u (docs/review.md)."""
    if request.method == "POST":
        photo_id = _positive_int(request.POST.get("photo"))
        try:
            if photo_id is None:
                raise DomainError("Pick a photo.")
            collector_services.verification_submit(
                user=request.user, photo_id=photo_id, verdict=request.POST.get("verdict", ""),
                label_slug=request.POST.get("label") or None)
            messages.success(request, "Thank you: your verdict on photo #%d is in." % photo_id)
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("/verify/")
    item, reason = None, ""
    try:
        item = collector_services.verification_next(user=request.user)
    except DomainError as exc:
        reason = exc.message
    context = {"item": item, "reason": reason, "buttons": VERDICT_BUTTONS,
               "labels": collector_selectors.label_list_active()}
    if item is not None:
        context["thumb_width"], context["thumb_height"] = thumbnail_size(item.photo.width, item.photo.height)
    return render(request, "pages/verify.html", context)


# --- the camera page ----------------------------------------------------------


@require_http_methods(["GET", "POST"])
def capture(request):
    """The camera page. With JavaScript the upload goes to POST /api/v1/photos/ (progress, retries);
    without it the form posts here and the same service stores the photo.

    Signed out, it says what the page is for and offers sign-up or sign-in, both coming back here
    (with the label or challenge the link chose); a form posted after the session ended is refused
    (403) on the same page, nothing stored."""
    if not request.user.is_authenticated:
        back = request.get_full_path() if request.method == "GET" else "/capture/"
        return render(request, "pages/capture_signed_out.html", {
            "next": back,
            "challenge": challenge_selectors.challenge_today(),
            "session_ended": request.method == "POST",
        }, status=403 if request.method == "POST" else 200)
    labels = collector_selectors.label_list_ranked()  # most needed first (issue 19)
    challenge = challenge_selectors.challenge_today()
    selected = request.POST.get("target") or request.GET.get("target") or ("challenge" if challenge else "")
    if selected == "challenge" and challenge is None:
        selected = ""  # yesterday's link: make the volunteer pick a label rather than preselect one
    result = None
    error = None
    status = 200
    if request.method == "POST":
        result, error, status = _capture_post(request, challenge)
    thumb = thumbnail_size(result.photo.width, result.photo.height) if result else None
    return render(request, "pages/capture.html", {
        "labels": labels,
        "needed": labels[:3],
        "challenge": challenge,
        "selected": selected,
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
        return None, "Choose or take a photo first.", 400
    if target == "challenge":
        if challenge is None:
            return None, "There is no open challenge right now; pick a label.", 400
        label_slug, challenge_id = challenge.label.slug, challenge.pk
    elif target:
        label_slug, challenge_id = target, None
    else:
        return None, "Pick what the photo shows.", 400
    wait = _throttle_wait(request, UploadThrottle())  # POST /api/v1/photos/'s rate, in the same bucket
    if wait:
        minutes = max(1, round(wait / 60))
        return None, f"Too many uploads. Try again in {minutes} minute{'s' if minutes != 1 else ''}.", 429
    key = request.POST.get("idempotency_key") or None
    try:
        result = collector_services.photo_create(
            user=request.user, image_file=image, label_slug=label_slug, challenge_id=challenge_id,
            idempotency_key=key[:128] if key else None,
        )
    except DomainError as exc:  # collector's, or challenges' check of the entry through collector's signal
        return None, exc.message, status_for(exc)  # the status the API gives the same error
    return result, None, 201 if result.created else 200


