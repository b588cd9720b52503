"""Web pages: subscribe, confirm, unsubscribe (RFC 8058 one-click) and the public archive."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.throttling import ScopedRateThrottle

from config.domain_errors import DomainError
from newsletter import emails, selectors, services, tokens


class _PageThrottleView:
    throttle_scope = "newsletter_subscribe"


def _subscribe_allowed(request) -> bool:
    """The form gets the API's per-client limit (NEWSLETTER_SUBSCRIBE_RATE), so neither is a way to mail-bomb."""
    return ScopedRateThrottle().allow_request(request, _PageThrottleView())


@require_http_methods(["GET", "POST"])
def subscribe_page(request):
    context = {"email": "", "error": "", "done": False}
    if request.method == "POST":
        email = request.POST.get("email", "")
        if not _subscribe_allowed(request):
            context.update(email=email, error="Too many requests from your address; try again later.")
            return render(request, "newsletter/pages/subscribe.html", context, status=429)
        try:
            services.subscriber_subscribe(email=email, user=request.user)
            context["done"] = True
        except DomainError as exc:
            context.update(email=email, error=exc.message)
    elif request.user.is_authenticated:
        context["email"] = request.user.email
    return render(request, "newsletter/pages/subscribe.html", context, status=400 if context["error"] else 200)


@require_http_methods(["GET", "POST"])
def confirm_page(request, token: str):
    """GET shows a button, POST confirms: link scanners that open every URL must not confirm for the reader."""
    if tokens.confirm_token_read(token) is None:
        return render(request, "newsletter/pages/confirm.html", {"invalid": True}, status=400)
    if request.method == "POST":
        subscriber = services.subscriber_confirm(token=token)
        confirmed = subscriber is not None and subscriber.status == "confirmed"
        return render(request, "newsletter/pages/confirm.html", {"confirmed": confirmed, "invalid": not confirmed},
                      status=200 if confirmed else 400)
    return render(request, "newsletter/pages/confirm.html", {"token": token})


@csrf_exempt  # RFC 8058: the mail provider POSTs "List-Unsubscribe=One-Click" without cookies or a CSRF token
@require_http_methods(["GET", "POST"])
def unsubscribe_page(request, token: str):
    """POST unsubscribes at once; GET only shows a button, because mail scanners follow links."""
    if tokens.unsubscribe_token_read(token) is None:
        return render(request, "newsletter/pages/unsubscribe.html", {"invalid": True}, status=400)
    if request.method == "POST":
        services.subscriber_unsubscribe(token=token)
        return render(request, "newsletter/pages/unsubscribe.html", {"done": True})
    return render(request, "newsletter/pages/unsubscribe.html", {"token": token})


def archive_page(request):
    return render(request, "newsletter/pages/archive.html", {"editions": selectors.editions_public()[:200]})


def archive_detail_page(request, edition_id: int):
    edition = selectors.edition_get_public(edition_id=edition_id)
    if edition is None:
        raise Http404("No such edition")
    return HttpResponse(emails.edition_html_for_web(edition))
