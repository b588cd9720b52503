"""Review pages for staff, as plain views inside the admin site (its login, look and messages): the review
queue page, and the decision posted from a photo's review panel. The Photo admin (collector.admin_review)
only hooks these URLs in; this module never imports it.

The queue: a grid of large pending photos, decided from the keyboard, one at a time or by selection.

GET /admin/collector/photo/review/ renders the grid (oldest pending first, never the reviewer's own photos,
optionally one label). POST to the same address decides: ``decision`` (approve, reject, relabel) for the
photos in ``ids`` (or the one named by a card's button), with ``reason`` (reject) or ``label`` (relabel).
The page's script posts with ``Accept: application/json`` and gets one result per photo; without the
script the form posts and the page comes back with the admin's messages.

Every decision goes through collector.services.photo_decide, which holds every rule (a rejection needs a
reason; never your own photo; a decision the photo already carries is answered "already ..." and writes no
second audit row, checked under the photo's row lock). Who may review is collector.selectors.user_is_reviewer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from urllib.parse import parse_qsl

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from collector import selectors, services
from collector.models import Label, Photo, RejectionReason, public_name_for
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

    return [
        path("review/", site.admin_view(review_view), name="collector_photo_review"),
        path("<int:photo_id>/decide/", site.admin_view(panel_decide_view), name="collector_photo_decide"),
    ]


def _require_reviewer(user) -> None:
    if not selectors.user_is_reviewer(user):
        raise PermissionDenied


def volunteer_name(photo: Photo) -> str:
    """The public name (display name with consent, else "Volunteer #id"): what leaderboards show too."""
    if photo.volunteer is None:
        return "a deleted account"
    profile = getattr(photo.volunteer, "volunteer", None)
    return profile.public_name if profile is not None else public_name_for(photo.volunteer_id)


def queue_view(request, *, site):
    _require_reviewer(request.user)
    if request.method == "POST":
        return decide_view(request)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    labels = list(Label.objects.order_by("slug"))
    label = next((item for item in labels if item.slug == request.GET.get("label")), None)
    order = "model_disagrees" if request.GET.get("order") == "model_disagrees" else ""
    flag = selectors.AUDIT_FLAG if request.GET.get("flag") == selectors.AUDIT_FLAG else ""
    queue = selectors.review_queue(user=request.user, label=label, model_disagrees_first=bool(order), flag=flag)
    batch = list(queue.select_related("label", "volunteer__volunteer", "near_duplicate_of", "crowd_label",
                                      "audit_suggested_label")[: 2 * PAGE_SIZE])
    photos, upcoming = batch[:PAGE_SIZE], batch[PAGE_SIZE:]
    guesses = selectors.review_guesses(photo_ids=[photo.pk for photo in photos])
    context = {
        **site.each_context(request),
        "title": "Review queue" if not flag else "Review queue: likely mislabelled",
        "opts": Photo._meta,
        "cards": [_card(photo, guesses.get(photo.pk)) for photo in photos],
        "preload": [photo.thumbnail_url for photo in upcoming if photo.thumbnail_key],
        "waiting": queue.count(),
        "labels": labels,
        "label": label,
        "order": order,
        "flag": flag,
        "reasons": REASON_KEYS,
        "page_url": request.get_full_path(),
        "changelist_url": reverse("admin:collector_photo_changelist"),
        "thresholds": [(p, f"{p:.0%}") for p in settings.REVIEW_AGREE_THRESHOLDS],
        "agree": _agree_preview(request, label) if not flag else None,
    }
    return TemplateResponse(request, "admin/collector/photo/review_queue.html", context)


def _agree_preview(request, label: Label | None) -> dict | None:
    """?agree_at=p: the photos of this reviewer's queue whose model guess is their label at p or more, and
    p's measured error rate, for the reviewer to confirm (nothing is approved until they do)."""
    raw = request.GET.get("agree_at", "")
    threshold = next((p for p in settings.REVIEW_AGREE_THRESHOLDS if f"{p:g}" == raw), None)
    if threshold is None:
        return None
    queue = selectors.review_queue_model_agrees(user=request.user, threshold=threshold, label=label)
    ids = list(queue.values_list("pk", flat=True)[:MAX_IDS])
    decided, wrong = selectors.model_agreement_error_rate(threshold=threshold)
    return {"threshold": threshold, "percent": f"{threshold:.0%}", "ids": ids, "n": len(ids),
            "more": max(0, queue.count() - len(ids)), "decided": decided, "wrong": wrong,
            "error_rate": f"{wrong / decided:.1%}" if decided else None}


def _card(photo: Photo, guess) -> dict:
    """One card of the queue; ``guess``: the model's guess for the photo (a PhotoPrediction) or None."""
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
        "guess": guess,
        "model_disagrees": guess is not None and guess.label != photo.label.slug,
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
    if decision != "relabel":
        label_slug = ""  # the toolbar's label box only means something to a relabel
    fields = {}
    if not ids or len(ids) > MAX_IDS or not all(i.isdigit() and len(i) < 19 for i in ids):
        fields["ids"] = [f"Pick 1 to {MAX_IDS} photos."]
    try:
        services.review_input_check(decision=decision, reason=reason, label_slug=label_slug)
    except DomainError as exc:
        fields.update(exc.fields or {"decision": [exc.message]})
    if fields:
        message = " ".join(f"{name}: {text[0]}" for name, text in fields.items())
        if wants_json:
            return error_response(400, "invalid", message, fields)
        messages.error(request, message)
        return _back(request)

    note, skipped = "", []
    batch = request.POST.get("agree_at", "")
    if batch:  # the confirmed "approve the N photos where the model agrees at >= p"
        threshold = next((p for p in settings.REVIEW_AGREE_THRESHOLDS if f"{p:g}" == batch), None)
        if decision != "approve" or threshold is None:
            message = "agree_at: not one of the offered thresholds."
            if wants_json:
                return error_response(400, "invalid", message, {"agree_at": [message]})
            messages.error(request, message)
            return _back(request)
        still = set(selectors.review_queue_model_agrees(user=request.user, threshold=threshold)
                    .filter(pk__in=[int(i) for i in ids]).values_list("pk", flat=True))
        skipped = [i for i in ids if int(i) not in still]  # relabelled or decided since the preview
        ids = [i for i in ids if int(i) in still]
        note = f"{selectors.BATCH_NOTE_PREFIX} at >= {threshold:g}"
    outcomes = [_decide_one(request.user, int(photo_id), decision, reason, label_slug, note)
                for photo_id in dict.fromkeys(ids)]  # each photo once, in the order given
    outcomes += [Outcome(int(i), ok=False, changed=False,
                         message=f"Photo #{i}: the model no longer agrees with its label, or it was decided; "
                                 "left as it is.") for i in skipped]
    summary = _summary(outcomes, decision)
    if wants_json:
        return JsonResponse({"results": [asdict(o) for o in outcomes], "message": summary,
                             "waiting": selectors.review_queue(user=request.user).count()})
    level = messages.SUCCESS if all(o.ok for o in outcomes) else messages.ERROR
    messages.add_message(request, level, summary)
    return _back(request)


def _back(request):
    url = reverse("admin:collector_photo_review")
    params = {key: request.POST.get(f"filter_{key}", "") for key in ("label", "order", "flag")}
    params = {key: value for key, value in params.items() if value}
    return HttpResponseRedirect(url + ("?" + urlencode(params) if params else ""))


def _decide_one(user, photo_id: int, decision: str, reason: str, label_slug: str, note: str = "") -> Outcome:
    try:
        result = services.photo_decide(photo_id=photo_id, reviewer=user, decision=decision, reason=reason,
                                       label_slug=label_slug or None, note=note)
    except DomainError as exc:  # services raise domain errors only (no HTTP knowledge below the views)
        return Outcome(photo_id, ok=False, changed=False, message=f"Photo #{photo_id}: {exc.message}")
    changed = result.changed
    photo = Photo.objects.select_related("label").get(pk=photo_id)
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


# --- a photo's review panel (the photo's admin page shows it; collector.admin_review) ---------------

REASON_CHOICES = [("", "— pick a reason —"), *RejectionReason.choices]


class LabelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.slug} ({obj.name})" + ("" if obj.active else " [inactive]")


class DecisionForm(forms.Form):
    """The review panel on a photo's page. Its rules (a rejection needs a reason...) are the service's."""

    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject"), ("relabel", "Relabel")])
    label = LabelChoiceField(queryset=Label.objects.order_by("slug"), to_field_name="slug", required=False)
    reason = forms.ChoiceField(choices=REASON_CHOICES, required=False)
    note = forms.CharField(required=False, max_length=500)
    next = forms.BooleanField(required=False)


def panel_decide_view(request, photo_id: int):
    """POST from a photo's review panel: decide, then open the next pending photo in the same filter."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _require_reviewer(request.user)
    photo = get_object_or_404(Photo, pk=photo_id)
    filters = urlencode(parse_qsl(request.POST.get("_changelist_filters", "")))  # normalised: no stray bytes
    here = reverse("admin:collector_photo_change", args=[photo.pk])
    if filters:
        here += "?" + urlencode({"_changelist_filters": filters})
    form = DecisionForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{field}: {error}" if field != "__all__" else error)
        return HttpResponseRedirect(here)
    data = form.cleaned_data
    label = data.get("label")
    if data["decision"] == "relabel":
        label_slug = label.slug if label is not None else None
    else:
        label_slug = label.slug if label is not None and label.pk != photo.label_id else None
    try:
        result = services.photo_decide(photo_id=photo.pk, reviewer=request.user, decision=data["decision"],
                                       reason=data["reason"], label_slug=label_slug, note=data["note"])
    except DomainError as exc:
        messages.error(request, f"Photo #{photo.pk}: {exc.message}")
        return HttpResponseRedirect(here)
    photo = result.photo
    if data["decision"] == "relabel":
        done = f"Photo #{photo.pk} relabelled as {label_slug}."
    else:
        done = f"Photo #{photo.pk} {photo.get_status_display().lower()}"
        if photo.rejection_reason:
            done += f" ({photo.get_rejection_reason_display().lower()})"
        if label_slug:
            done += f", relabelled as {label_slug}"
        done += "."
    if not result.changed:
        done = f"Photo #{photo.pk} was already so: nothing changed."
    messages.success(request, done)
    if data.get("next"):
        nxt = _next_in_queue(request.user, after=photo, filters=filters)
        if nxt is not None:
            url = reverse("admin:collector_photo_change", args=[nxt])
            if filters:
                url += "?" + urlencode({"_changelist_filters": filters})
            return HttpResponseRedirect(url)
        messages.info(request, "The pending queue is empty.")
        return HttpResponseRedirect(reverse("admin:collector_photo_changelist") + (f"?{filters}" if filters else ""))
    return HttpResponseRedirect(here)


def _next_in_queue(user, *, after: Photo, filters: str) -> int | None:
    """The next photo of the review queue this reviewer may decide on, within the label/challenge/near-duplicate
    filter they came from."""
    params = dict(parse_qsl(filters))
    label_id = params.get("label__id__exact", "")
    label = Label.objects.filter(pk=int(label_id)).first() if label_id.isdigit() else None
    if label_id.isdigit() and label is None:
        return None
    challenge = params.get("challenge", "")
    duplicate = params.get("near_duplicate")
    queue = selectors.review_queue(
        user=user, label=label, challenge_id=int(challenge) if challenge.isdigit() else None,
        near_duplicate={"yes": True, "no": False}.get(duplicate), exclude_ids=[after.pk])
    return queue.values_list("pk", flat=True).first()
