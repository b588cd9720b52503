"""The review queue page: a grid of large pending photos, decided from the keyboard, one at a time or by selection.

GET /admin/collector/photo/review/ renders the grid (oldest pending first, never the reviewer's own photos,
optionally one label). POST to the same address decides: ``decision`` (approve, reject, relabel) for the
photos in ``ids`` (or the one named by a card's button), with ``reason`` (reject) or ``label`` (relabel).
The page's script posts with ``Accept: application/json`` and gets one result per photo; without the
script the form posts and the page comes back with the admin's messages.

Every decision goes through collector.services. A decision the photo already carries (approving an
approved photo, a double-clicked button, a retried request) is answered "already ..." and writes no
second audit row: the check and the decision happen under the photo's row lock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from collector import services
from collector.admin_review import is_reviewer
from collector.models import Label, Photo, PhotoStatus, RejectionReason, public_name_for
from config.domain_errors import DomainError
from config.errors import error_response

PAGE_SIZE = 24  # photos in the grid; as many again are preloaded for the next page
DECISIONS = ("approve", "reject", "relabel")
MAX_IDS = 200  # one request decides at most this many photos (a selection is at most a page or two)
# Keys 1-5 pick a rejection reason, in RejectionReason's order.
REASON_KEYS = [(str(number), value, label) for number, (value, label) in enumerate(RejectionReason.choices, 1)]


def review_urls(model_admin) -> list:
    """Hooked into PhotoAdmin.get_urls: the admin's login, permission wrapper and URL namespace."""
    site = model_admin.admin_site

    def review_view(request):
        return queue_view(request, site=site)

    return [path("review/", site.admin_view(review_view), name="collector_photo_review")]


def pending_queue(user, label: Label | None = None):
    """What a reviewer decides on: pending photos, oldest first, none of their own."""
    queryset = Photo.objects.filter(status=PhotoStatus.PENDING).exclude(volunteer=user)
    if label is not None:
        queryset = queryset.filter(label=label)
    return queryset.order_by("created_at", "id")


def volunteer_name(photo: Photo) -> str:
    """The public name (display name with consent, else "Volunteer #id"): what leaderboards show too."""
    if photo.volunteer is None:
        return "a deleted account"
    profile = getattr(photo.volunteer, "volunteer", None)
    return profile.public_name if profile is not None else public_name_for(photo.volunteer_id)


def queue_view(request, *, site):
    if not is_reviewer(request.user):
        raise PermissionDenied
    if request.method == "POST":
        return decide_view(request)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    labels = list(Label.objects.order_by("slug"))
    label = next((item for item in labels if item.slug == request.GET.get("label")), None)
    queue = pending_queue(request.user, label)
    batch = list(queue.select_related("label", "volunteer__volunteer", "near_duplicate_of")[: 2 * PAGE_SIZE])
    photos, upcoming = batch[:PAGE_SIZE], batch[PAGE_SIZE:]
    context = {
        **site.each_context(request),
        "title": "Review queue",
        "opts": Photo._meta,
        "cards": [_card(photo) for photo in photos],
        "preload": [photo.thumbnail_url for photo in upcoming if photo.thumbnail_key],
        "waiting": queue.count(),
        "labels": labels,
        "label": label,
        "reasons": REASON_KEYS,
        "page_url": request.get_full_path(),
        "changelist_url": reverse("admin:collector_photo_changelist"),
    }
    return TemplateResponse(request, "admin/collector/photo/review_queue.html", context)


def _card(photo: Photo) -> dict:
    prediction = ""
    if photo.predicted_label:
        prediction = photo.predicted_label
        if photo.predicted_confidence is not None:
            prediction += f" ({photo.predicted_confidence:.0%})"
    return {
        "photo": photo,
        "image_url": photo.thumbnail_url if photo.thumbnail_key else "",
        "volunteer": volunteer_name(photo),
        "prediction": prediction,
        "phone_disagrees": bool(photo.predicted_label) and photo.predicted_label != photo.label.slug,
        "change_url": reverse("admin:collector_photo_change", args=[photo.pk]),
        "original_url": (reverse("admin:collector_photo_change", args=[photo.near_duplicate_of_id])
                         if photo.near_duplicate_of_id else ""),
    }


# --- deciding -------------------------------------------------------------


@dataclass
class Outcome:
    id: int
    ok: bool
    changed: bool
    message: str
    status: str = ""
    status_display: str = ""
    reason: str = ""
    label: str = ""


def decide_view(request):
    wants_json = "application/json" in request.headers.get("Accept", "")
    decision, ids = request.POST.get("decision", ""), request.POST.getlist("ids")
    one = request.POST.get("one", "")
    if one:  # a card's own button: "approve:8", "reject:8" or "relabel:8"
        decision, _, photo_id = one.partition(":")
        ids = [photo_id]
    reason, label_slug = request.POST.get("reason", ""), request.POST.get("label", "")
    fields = {}
    if decision not in DECISIONS:
        fields["decision"] = ["approve, reject or relabel"]
    if not ids or len(ids) > MAX_IDS or not all(i.isdigit() and len(i) < 19 for i in ids):
        fields["ids"] = [f"Pick 1 to {MAX_IDS} photos."]
    if decision == "reject" and reason not in RejectionReason.values:
        fields["reason"] = ["Pick a reason: " + ", ".join(RejectionReason.values) + "."]
    label = Label.objects.filter(slug=label_slug).first() if decision == "relabel" and label_slug else None
    if decision == "relabel" and label is None:
        fields["label"] = ["Pick a label."]
    if fields:
        message = " ".join(f"{name}: {text[0]}" for name, text in fields.items())
        if wants_json:
            return error_response(400, "invalid", message, fields)
        messages.error(request, message)
        return _back(request)

    outcomes = [_decide_one(request.user, int(photo_id), decision, reason, label)
                for photo_id in dict.fromkeys(ids)]  # each photo once, in the order given
    summary = _summary(outcomes, decision)
    if wants_json:
        return JsonResponse({"results": [asdict(o) for o in outcomes], "message": summary,
                             "waiting": pending_queue(request.user).count()})
    level = messages.SUCCESS if all(o.ok for o in outcomes) else messages.ERROR
    messages.add_message(request, level, summary)
    return _back(request)


def _back(request):
    url = reverse("admin:collector_photo_review")
    label = request.POST.get("filter_label", "")
    return HttpResponseRedirect(url + ("?" + urlencode({"label": label}) if label else ""))


def _already(photo: Photo, decision: str, reason: str, label: Label | None) -> bool:
    """Does the photo already carry this decision? Then deciding again would only add a duplicate audit row."""
    if decision == "approve":
        return photo.status == PhotoStatus.APPROVED
    if decision == "reject":
        return photo.status == PhotoStatus.REJECTED and photo.rejection_reason == reason
    return photo.label_id == label.pk


def _decide_one(user, photo_id: int, decision: str, reason: str, label: Label | None) -> Outcome:
    try:
        with transaction.atomic():
            # The row lock makes "already decided?" and the decision one step: a double submission waits
            # here for the first one and then finds the photo decided.
            photo = Photo.objects.lock_or_404(photo_id)
            changed = not _already(photo, decision, reason, label)
            if changed and decision == "relabel":
                photo = services.photo_relabel(photo_id=photo_id, reviewer=user, label_slug=label.slug)
            elif changed:
                photo = services.photo_review(photo_id=photo_id, reviewer=user, decision=decision, reason=reason)
    except DomainError as exc:  # services raise domain errors only (no HTTP knowledge below the views)
        return Outcome(photo_id, ok=False, changed=False, message=f"Photo #{photo_id}: {exc.message}")
    photo = Photo.objects.select_related("label").get(pk=photo.pk)
    state = photo.get_status_display().lower()
    if photo.rejection_reason:
        state += f" ({photo.get_rejection_reason_display().lower()})"
    if decision == "relabel":
        message = f"Photo #{photo_id} relabelled as {photo.label.slug}." if changed else \
            f"Photo #{photo_id} was already labelled {photo.label.slug}."
    else:
        message = f"Photo #{photo_id} {state}." if changed else f"Photo #{photo_id} was already {state}."
    return Outcome(photo_id, ok=True, changed=changed, message=message, status=photo.status,
                   status_display=photo.get_status_display(), reason=photo.rejection_reason, label=photo.label.slug)


def _summary(outcomes: list[Outcome], decision: str) -> str:
    if len(outcomes) == 1:
        return outcomes[0].message
    changed = sum(1 for o in outcomes if o.changed)
    same = sum(1 for o in outcomes if o.ok and not o.changed)
    failed = [o.message for o in outcomes if not o.ok]
    done = {"approve": "approved", "reject": "rejected", "relabel": "relabelled"}[decision]
    parts = [f"{changed} of {len(outcomes)} photos {done}"]
    if same:
        parts.append(f"{same} already so")
    text = ", ".join(parts) + "."
    if failed:
        text += " Not changed: " + " ".join(failed)
    return text
