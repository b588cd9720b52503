"""The Photo admin: the photo list, the review panel shown on a photo's page, the bulk actions.

Every decision goes through collector.services.photo_decide (the rules once: a
rejection needs a reason, never one's own photo, "already decided?" under the
row lock), which records who decided what and when in PhotoReview rows. The
queue page and the panel's decision are plain views (collector.review_views),
hooked in through get_urls; that module never imports this one. Photo fields
are read-only here: a photo changes only through those views and the actions.
Registered when Django loads collector.admin, which imports this module.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from collector import services
from config.admin_base import ReadOnlyMixin
from collector.admin_filters import ChallengeFilter, NearDuplicateFilter, StatusFilter
from collector.models import Label, Photo, PhotoReview, PhotoStatus, photo_thumbnail_url
from collector.review_views import REASON_CHOICES, DecisionForm, LabelChoiceField, review_urls
from collector.selectors import user_is_reviewer
from config.domain_errors import DomainError

LIST_THUMB_PX = 160  # the list: enough to recognise a photo (the review queue shows them at 300 px)
PAGE_THUMB_PX = 480  # the review page: the full thumbnail (PHOTO_THUMBNAIL_SIZE)


def _thumb(photo_id: int, px: int):
    return format_html(
        '<img src="{}" alt="Photo {}" loading="lazy" class="crowdlens-thumb" '
        'style="max-width:{}px;max-height:{}px;object-fit:contain;background:#eee">',
        photo_thumbnail_url(photo_id), photo_id, px, px,
    )


# --- forms ----------------------------------------------------------------

class RejectForm(forms.Form):
    reason = forms.ChoiceField(choices=REASON_CHOICES)
    note = forms.CharField(required=False, max_length=500, help_text="Optional; the volunteer sees the reason.")


class RelabelForm(forms.Form):
    label = LabelChoiceField(queryset=Label.objects.order_by("slug"), to_field_name="slug")


# --- photos ---------------------------------------------------------------


class PhotoReviewInline(ReadOnlyMixin, admin.TabularInline):
    """The audit trail on the photo's page: every decision, who and when."""

    model = PhotoReview
    fk_name = "photo"
    extra = 0
    can_delete = False
    verbose_name = "decision"
    verbose_name_plural = "Review history (who decided what, when)"
    template = "admin/collector/photo/review_history_inline.html"  # no empty columns; scrolls by keyboard
    fields = ["created_at", "reviewer", "decision", "reason", "label_before", "label_after", "note"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("reviewer", "label_before", "label_after")


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail", "id", "label", "status_display", "volunteer", "near_duplicate", "prediction", "created_at",
        "reviewed_by",
    ]
    list_display_links = ["thumbnail", "id"]
    list_filter = [
        StatusFilter,
        "label",
        ("volunteer", admin.RelatedOnlyFieldListFilter),
        NearDuplicateFilter,
        ChallengeFilter,
    ]
    list_select_related = ["label", "volunteer", "reviewed_by"]
    search_fields = ["volunteer__username", "^sha256"]
    ordering = ["created_at", "id"]  # the queue: oldest first
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over the whole table on every page
    actions = ["approve_photos", "reject_photos", "relabel_photos"]
    inlines = [PhotoReviewInline]
    fieldsets = [
        ("Photo", {"fields": ["label", "status", "volunteer", "near_duplicate_detail", "created_at"]}),
        ("Decision", {"fields": ["reviewed_by", "reviewed_at", "rejection_reason", "review_note", "approved_at",
                                 "withdrawn_at"]}),
        ("Curation", {"fields": ["disputed", "crowd_label", "audit_flag", "audit_score", "audit_suggested_label",
                                 "audit_suggested_confidence", "audit_outcome"]}),
        ("From the phone", {"fields": ["challenge_id", "captured_at", "device_model", "app_version",
                                       "predicted_label", "predicted_confidence", "model_version"]}),
        ("File", {"classes": ["collapse"], "fields": ["source_format", "width", "height", "byte_size", "sha256",
                                                       "phash", "original_key", "training_key", "thumbnail_key",
                                                       "updated_at"]}),
    ]

    # Read-only everywhere: decisions only through the review panel and the actions.
    def get_readonly_fields(self, request, obj=None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def has_add_permission(self, request):
        return False  # photos arrive through the upload API or photos_import

    def has_delete_permission(self, request, obj=None):
        return False  # withdrawal goes through the volunteer's account deletion (files too)

    def has_review_permission(self, request, obj=None):
        return user_is_reviewer(request.user)

    def has_view_permission(self, request, obj=None):
        # The review permission alone is enough to open the queue (API reviewers need no extra grants).
        return super().has_view_permission(request, obj) or user_is_reviewer(request.user)

    def get_list_display(self, request):
        if user_is_reviewer(request.user):
            return self.list_display
        # The thumbnail view only serves reviewers (and owners): no broken images for other staff.
        return [column for column in self.list_display if column != "thumbnail"]

    def get_list_display_links(self, request, list_display):
        return [column for column in self.list_display_links if column in list_display]

    def save_model(self, request, obj, form, change):
        pass  # nothing on this form is editable; never write fields directly

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("label", "volunteer", "reviewed_by")

    # --- columns

    @admin.display(description="Photo")
    def thumbnail(self, obj):
        if not obj.thumbnail_key:
            return "(files deleted)"  # withdrawn: the volunteer deleted their account
        return _thumb(obj.pk, LIST_THUMB_PX)

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj):
        if obj.status == PhotoStatus.REJECTED and obj.rejection_reason:
            return f"{obj.get_status_display()}: {obj.get_rejection_reason_display()}"
        return obj.get_status_display()

    @admin.display(description="Near-duplicate of")
    def near_duplicate(self, obj):
        if not obj.near_duplicate_of_id:
            return ""
        url = reverse("admin:collector_photo_change", args=[obj.near_duplicate_of_id])
        return format_html('<a href="{}" class="near-duplicate">≈ #{}</a>', url, obj.near_duplicate_of_id)

    @admin.display(description="Phone said")
    def prediction(self, obj):
        if not obj.predicted_label:
            return ""
        if obj.predicted_confidence is None:
            return obj.predicted_label
        return f"{obj.predicted_label} ({obj.predicted_confidence:.0%})"

    @admin.display(description="Near-duplicate of")
    def near_duplicate_detail(self, obj):
        original = obj.near_duplicate_of
        if original is None:
            return "No similar earlier photo."
        url = reverse("admin:collector_photo_change", args=[original.pk])
        return format_html(
            '<a href="{}" class="near-duplicate">Photo #{} ({}, {}, by {})</a>',
            url, original.pk, original.label.slug, original.get_status_display(), original.volunteer or "deleted account",
        )

    # --- the review panel on a photo's page

    def get_urls(self):
        return [*review_urls(self), *super().get_urls()]  # the queue page and the review panel's decisions

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False,
                             show_delete=False)
        if object_id is not None and str(object_id).isdigit():
            photo = (Photo.objects.select_related("label", "volunteer", "near_duplicate_of__label")
                     .filter(pk=object_id).first())
            if photo is not None:
                reviewer = user_is_reviewer(request.user)
                extra_context["review"] = {
                    "photo": photo,
                    "image_url": photo.thumbnail_url,
                    "image_px": PAGE_THUMB_PX,
                    "original_url": photo_thumbnail_url(photo.near_duplicate_of_id) if photo.near_duplicate_of_id else "",
                    "can_review": reviewer and not photo.is_owned_by(request.user)
                    and photo.status != PhotoStatus.WITHDRAWN,
                    "is_reviewer": reviewer,
                    "own": photo.is_owned_by(request.user),
                    "form": DecisionForm(initial={"label": photo.label.slug, "next": True}),
                    "decide_url": reverse("admin:collector_photo_decide", args=[photo.pk]),
                    "changelist_filters": request.GET.get("_changelist_filters", ""),
                }
        return super().changeform_view(request, object_id, form_url, extra_context)

    # --- bulk actions

    def _decide_many(self, request, queryset, *, verb: str, decision: str, reason: str = "", label_slug=None,
                     note: str = "") -> None:
        """Decide each selected photo through services.photo_decide (its own transaction and row lock: a photo
        another reviewer decided meanwhile is answered "already", never recorded twice); skip own photos."""
        done, own, unchanged, failed = 0, 0, 0, []
        for photo in queryset.select_related(None).order_by("created_at", "id").only("pk", "volunteer_id"):
            if photo.is_owned_by(request.user):
                own += 1
                continue
            try:
                result = services.photo_decide(photo_id=photo.pk, reviewer=request.user, decision=decision,
                                               reason=reason, label_slug=label_slug, note=note)
            except DomainError as exc:
                failed.append(f"#{photo.pk}: {exc.message}")
                continue
            if result.changed:
                done += 1
            else:
                unchanged += 1
        if done:
            self.message_user(request, f"{done} photo{'s' if done != 1 else ''} {verb}.", messages.SUCCESS)
        if unchanged:
            self.message_user(request, f"{unchanged} already {verb}: left as they were.", messages.INFO)
        if own:
            self.message_user(
                request, f"Skipped {own} of your own photo{'s' if own != 1 else ''}: another reviewer must decide.",
                messages.WARNING,
            )
        if failed:
            self.message_user(request, "Not changed: " + "; ".join(failed), messages.ERROR)

    @admin.action(description="Approve selected photos", permissions=["review"])
    def approve_photos(self, request, queryset):
        self._decide_many(request, queryset, verb="approved", decision="approve")

    @admin.action(description="Reject selected photos (pick a reason)…", permissions=["review"])
    def reject_photos(self, request, queryset):
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._decide_many(request, queryset, verb="rejected", decision="reject",
                              reason=form.cleaned_data["reason"], note=form.cleaned_data["note"])
            return None
        return self._action_page(request, queryset, form, action="reject_photos", title="Reject photos",
                                 button="Reject these photos")

    @admin.action(description="Relabel selected photos (pick a label)…", permissions=["review"])
    def relabel_photos(self, request, queryset):
        form = RelabelForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            label = form.cleaned_data["label"]
            self._decide_many(request, queryset, verb=f"relabelled as {label.slug}", decision="relabel",
                              label_slug=label.slug)
            return None
        return self._action_page(request, queryset, form, action="relabel_photos", title="Relabel photos",
                                 button="Relabel these photos")

    def _action_page(self, request, queryset, form, *, action: str, title: str, button: str):
        """The intermediate page of a bulk action: the photos, and the form that picks the reason or label."""
        shown = 60
        photos = list(queryset.select_related("label", "volunteer").order_by("created_at", "id"))
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "form": form,
            "action": action,
            "button": button,
            "photos": [(p, p.thumbnail_url, p.is_owned_by(request.user)) for p in photos[:shown]],
            "more": max(0, len(photos) - shown),
            "selected_ids": [p.pk for p in photos],
            "own_count": sum(1 for p in photos if p.is_owned_by(request.user)),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "thumb_px": 120,
        }
        return TemplateResponse(request, "admin/collector/photo/action_form.html", context)
