"""The collector's admin pages: labels, volunteers, the review audit trail and storage sweeps.

The photo review queue (the Photo admin) lives in collector.admin_review; it is
imported here because Django's autodiscovery loads only this module.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from collector import admin_review  # noqa: F401  (registers the Photo admin: the review queue)
from collector import selectors, services
from config.admin_base import ReadOnlyAdmin
from collector.models import Label, PhotoReview, PhotoStatus, StorageSweep, Verification, Verifier, Volunteer


# --- labels, volunteers, the audit trail -----------------------------------


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "active", "approved", "pending", "prototype_progress", "production_progress"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    fields = ["slug", "name", "description", "active", "prototype_target", "production_target"]

    def get_readonly_fields(self, request, obj=None):
        # Phones, uploads, exports and trained models name classes by slug: fixed once created.
        return ["slug"] if obj is not None else []

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            approved_count=Count("photos", filter=Q(photos__status=PhotoStatus.APPROVED)),
            pending_count=Count("photos", filter=Q(photos__status=PhotoStatus.PENDING)),
        )

    @admin.display(description="Approved", ordering="approved_count")
    def approved(self, obj):
        return obj.approved_count

    @admin.display(description="Pending", ordering="pending_count")
    def pending(self, obj):
        if not obj.pending_count:
            return 0
        url = reverse("admin:collector_photo_changelist") + f"?status=pending&label__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.pending_count)

    @staticmethod
    def _progress(count: int, target: int):
        percent = min(100, round(100 * count / target)) if target else 100
        return format_html(
            '<span style="white-space:nowrap"><progress value="{}" max="{}" title="{}%"></progress> {} / {} ({}%)</span>',
            min(count, target), target, percent, count, target, percent,
        )

    @admin.display(description="Prototype target")
    def prototype_progress(self, obj):
        return self._progress(obj.approved_count, obj.effective_prototype_target)

    @admin.display(description="Production target")
    def production_progress(self, obj):
        return self._progress(obj.approved_count, obj.effective_production_target)


@admin.register(Volunteer)
class VolunteerAdmin(admin.ModelAdmin):
    """Looked up, not edited: consents are the volunteer's to give (through the API or the web)."""

    list_display = ["display_name", "email", "consent_training", "consent_public_credit", "approved", "pending",
                    "rejected", "created_at"]
    list_filter = ["consent_public_credit", "is_bootstrap"]
    search_fields = ["display_name", "user__email"]
    list_select_related = ["user"]
    readonly_fields = ["user", "display_name", "consent_training", "consent_public_credit", "is_bootstrap", "created_at",
                       "photos_link"]
    fields = readonly_fields
    actions = ["delete_accounts"]

    def get_queryset(self, request):
        photos = "user__photos__status"
        return super().get_queryset(request).select_related("user").annotate(
            approved_count=Count("user__photos", filter=Q(**{photos: PhotoStatus.APPROVED})),
            pending_count=Count("user__photos", filter=Q(**{photos: PhotoStatus.PENDING})),
            rejected_count=Count("user__photos", filter=Q(**{photos: PhotoStatus.REJECTED})),
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the plain delete would leave the account and the files; see delete_accounts

    def has_erase_permission(self, request):
        return request.user.is_superuser

    @admin.display(description="Email", ordering="user__email")
    def email(self, obj):
        return obj.user.email

    @admin.display(description="Approved", ordering="approved_count")
    def approved(self, obj):
        return obj.approved_count

    @admin.display(description="Pending", ordering="pending_count")
    def pending(self, obj):
        return obj.pending_count

    @admin.display(description="Rejected", ordering="rejected_count")
    def rejected(self, obj):
        return obj.rejected_count

    @admin.display(description="Photos")
    def photos_link(self, obj):
        url = reverse("admin:collector_photo_changelist") + f"?status=all&volunteer__id__exact={obj.user_id}"
        return format_html('<a href="{}">All photos by {}</a>', url, obj.display_name)

    @admin.action(description="Delete accounts (withdraw their photos, delete their files)", permissions=["erase"])
    def delete_accounts(self, request, queryset):
        names, withdrawn = [], 0
        for volunteer in queryset.select_related("user"):
            withdrawn += services.volunteer_delete(user=volunteer.user)
            names.append(volunteer.display_name)
        self.message_user(request, f"Deleted {len(names)} account(s) ({', '.join(names)}); {withdrawn} photo(s) "
                                   "withdrawn and their files deleted.", messages.SUCCESS)


@admin.register(PhotoReview)
class PhotoReviewAdmin(ReadOnlyAdmin):
    """The audit trail, read-only."""

    list_display = ["created_at", "photo_link", "decision", "reason", "label_change", "reviewer", "note"]
    list_filter = ["decision", "reason", ("reviewer", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["photo", "reviewer", "label_before", "label_after"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="Photo", ordering="photo_id")
    def photo_link(self, obj):
        return format_html('<a href="{}">#{}</a>', reverse("admin:collector_photo_change", args=[obj.photo_id]),
                           obj.photo_id)

    @admin.display(description="Label")
    def label_change(self, obj):
        if obj.label_before_id == obj.label_after_id:
            return obj.label_after.slug
        return f"{obj.label_before.slug} → {obj.label_after.slug}"


@admin.register(StorageSweep)
class StorageSweepAdmin(ReadOnlyAdmin):
    """What the nightly storage_sweep found: orphan files no photo row refers to."""

    list_display = ["started_at", "deleting", "files_checked", "orphans", "orphan_megabytes", "young_left_alone",
                    "deleted", "error"]
    list_filter = ["deleting"]
    readonly_fields = ["started_at", "finished_at", "deleting", "min_age_hours", "files_checked", "orphans",
                       "orphan_bytes", "young_left_alone", "deleted", "orphan_keys_list", "error"]
    exclude = ["orphan_keys"]

    @admin.display(description="Orphans (MB)", ordering="orphan_bytes")
    def orphan_megabytes(self, obj):
        return f"{obj.orphan_bytes / 1e6:.1f}"

    @admin.display(description="Orphan files (first 200)")
    def orphan_keys_list(self, obj):
        return format_html_join("", "<div><code>{}</code></div>", ((key,) for key in obj.orphan_keys)) or "-"


# --- community verification -------------------------------------------------


@admin.register(Verifier)
class VerifierAdmin(ReadOnlyAdmin):
    """Each verifier's verdicts and agreement with gold-standard photos (staff decided them); one whose
    agreement is too low stops counting until it recovers (docs/review.md)."""

    list_display = ["display_name", "verdicts", "gold_agreement", "standing"]
    search_fields = ["display_name", "user__username"]

    def get_queryset(self, request):
        return (super().get_queryset(request).filter(user__verifications__isnull=False).distinct()
                .annotate(verdict_count=Count("user__verifications", distinct=True)).order_by("display_name"))

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or selectors.user_is_reviewer(request.user)

    @admin.display(description="Verdicts", ordering="verdict_count")
    def verdicts(self, obj):
        return obj.verdict_count

    @admin.display(description="Gold agreement")
    def gold_agreement(self, obj):
        agreement = services.verifier_gold_agreement(user_id=obj.user_id)
        if not agreement.gold:
            return "no gold verdicts yet"
        return f"{agreement.agreed} of {agreement.gold} ({agreement.share:.0%})"

    @admin.display(description="Verdicts count?")
    def standing(self, obj):
        return "counted" if services.verifier_gold_agreement(user_id=obj.user_id).counts else "not counted (gold too low)"


@admin.register(Verification)
class VerificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "photo_id", "verifier", "verdict", "shown_label", "label", "gold", "counted"]
    list_filter = ["verdict", "gold", "counted"]
    list_select_related = ["verifier", "shown_label", "label"]
