"""Admin: plan challenges ahead, see the ledger and scores, feature photos, rebuild scores."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html

from challenges import periods, services
from challenges.models import ApprovedPhoto, Challenge, PhotoOfTheDay, PhotoNovelty, PointEntry, Score, Vote
from config.admin_base import ReadOnlyAdmin
from collector.models import PhotoStatus
from config.domain_errors import DomainError


@admin.register(Challenge)
class ChallengeAdmin(admin.ModelAdmin):
    list_display = ("date", "title", "label", "status", "bonus_points", "planned_by", "opened_at")
    list_filter = ("label",)
    date_hierarchy = "date"
    search_fields = ("title", "prompt", "label__slug")
    readonly_fields = ("planned_by", "selection_note", "opened_at", "created_at")
    fields = ("date", "label", "title", "prompt", "description", "starts_at", "ends_at", "bonus_points",
              "planned_by", "selection_note", "opened_at", "created_at")

    @admin.display(description="status")
    def status(self, obj):
        return obj.status_at(timezone.now())

    def get_changeform_initial_data(self, request):
        """Suggest the next day without a challenge and the label the rotate job would choose."""
        initial = super().get_changeform_initial_data(request)
        day = periods.challenge_date_at(timezone.now())
        taken = set(Challenge.objects.filter(date__gte=day).values_list("date", flat=True))
        while day in taken:
            day += dt.timedelta(days=1)
        initial.setdefault("date", day)
        choice = services.challenge_label_choose(day=day)
        if choice is not None:
            initial.setdefault("label", choice.label.pk)
            name = choice.label.name.lower()
            initial.setdefault("title", f"{choice.label.name} in an unexpected place")
            initial.setdefault("prompt", f"Photograph {'an' if name[:1] in 'aeiou' else 'a'} {name} "
                                         "somewhere nobody would expect one.")
        initial.setdefault("bonus_points", settings.CHALLENGE_BONUS_POINTS)
        return initial

    def save_model(self, request, obj, form, change):
        if not change:
            obj.planned_by = request.user
            obj.selection_note = "planned by staff"
        window = settings.CHALLENGE_NO_REPEAT_DAYS
        clash = (Challenge.objects.filter(label=obj.label, date__gt=obj.date - dt.timedelta(days=window),
                                          date__lt=obj.date + dt.timedelta(days=window)).exclude(pk=obj.pk)
                 .values_list("date", flat=True).first())
        if clash:
            messages.warning(request, f"{obj.label.slug} also has a challenge on {clash}, within "
                                      f"CHALLENGE_NO_REPEAT_DAYS={window}; saved anyway (staff override).")
        super().save_model(request, obj, form, change)


@admin.register(PointEntry)
class PointEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "volunteer", "points", "reason", "photo_id", "challenge_id", "earned_at", "active",
                    "reverses_id", "note")
    list_filter = ("reason", "active")
    search_fields = ("volunteer__username", "photo__id", "note")
    list_select_related = ("volunteer",)
    date_hierarchy = "created_at"


@admin.register(Score)
class ScoreAdmin(ReadOnlyAdmin):
    list_display = ("period", "volunteer", "points", "approved_photos")
    search_fields = ("period", "volunteer__username")
    list_select_related = ("volunteer",)
    ordering = ("period", "-points", "-approved_photos", "volunteer_id")
    actions = ["rebuild_from_ledger"]

    @admin.action(description="Rebuild ALL scores from the ledger (select any row)")
    def rebuild_from_ledger(self, request, queryset):
        rows = services.scores_recompute()
        self.message_user(request, f"Rebuilt {rows} score rows from the ledger.", messages.SUCCESS)

    def has_change_permission(self, request, obj=None):
        # the action needs it; the form itself shows read-only fields
        return request.user.is_superuser


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "voter", "photo_id")
    search_fields = ("voter__username",)
    list_select_related = ("voter",)


@admin.register(PhotoNovelty)
class PhotoNoveltyAdmin(ReadOnlyAdmin):
    list_display = ("photo_id", "label", "distance", "percentile", "compared_with", "points", "unusual",
                    "computed_at")
    list_filter = ("label",)

    def changelist_view(self, request, extra_context=None):
        from training import selectors as training_selectors

        self._outliers = training_selectors.label_audit_outliers()  # one read per page, not per row
        return super().changelist_view(request, extra_context)

    @admin.display(description="unusual for its label (label audit)")
    def unusual(self, obj):
        z = getattr(self, "_outliers", {}).get(obj.photo_id)
        return f"yes (z {z})" if z is not None else ""


@admin.register(PhotoOfTheDay)
class PhotoOfTheDayAdmin(admin.ModelAdmin):
    list_display = ("featured_on", "photo_id", "featured_by", "created_at")
    raw_id_fields = ("photo",)
    fields = ("photo", "featured_on")
    date_hierarchy = "featured_on"

    def get_changeform_initial_data(self, request):
        return {"featured_on": periods.local_date(timezone.now()), **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        # Never a plain save: a feature carries points, so every change goes through the services and the ledger.
        if change:
            try:
                services.photo_feature_change(feature_id=obj.pk, photo_id=obj.photo_id, on=obj.featured_on,
                                              staff_user=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return
        try:
            feature = services.photo_feature(photo_id=obj.photo_id, staff_user=request.user, on=obj.featured_on)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk = feature.pk

    def delete_model(self, request, obj):
        services.photo_unfeature(photo_id=obj.photo_id, staff_user=request.user)

    def delete_queryset(self, request, queryset):
        for feature in queryset:
            services.photo_unfeature(photo_id=feature.photo_id, staff_user=request.user)


@admin.register(ApprovedPhoto)
class ApprovedPhotoAdmin(admin.ModelAdmin):
    """Approved photos with their votes: pick photos of the day here."""

    list_display = ("thumb", "id", "label", "volunteer", "votes", "approved_at")
    list_filter = ("label",)
    search_fields = ("id", "volunteer__username", "label__slug")
    list_select_related = ("label", "volunteer")
    actions = ["feature_photos"]

    def get_queryset(self, request):
        from django.db.models import OuterRef, Subquery
        from django.db.models.functions import Coalesce

        votes = (Vote.objects.filter(photo_id=OuterRef("pk")).order_by().values("photo_id")
                 .annotate(n=Count("id")).values("n"))
        return (super().get_queryset(request).filter(status=PhotoStatus.APPROVED)
                .annotate(vote_count=Coalesce(Subquery(votes), 0)).order_by("-vote_count", "-approved_at"))

    @admin.display(description="votes", ordering="vote_count")
    def votes(self, obj):
        return obj.vote_count

    @admin.display(description="photo")
    def thumb(self, obj):
        return format_html('<img src="{}" alt="photo {}" width="80" loading="lazy">', obj.thumbnail_url, obj.pk)

    @admin.action(description="Feature as photo of the day")
    def feature_photos(self, request, queryset):
        done = 0
        for photo in queryset:
            try:
                services.photo_feature(photo_id=photo.pk, staff_user=request.user)
            except DomainError as exc:  # e.g. un-approved by another reviewer since the list was drawn
                self.message_user(request, f"Photo {photo.pk} not featured: {exc.message}", messages.ERROR)
                continue
            done += 1
        if done:
            self.message_user(request, f"Featured {done} photo(s).", messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # reviews happen in collector's photo admin; here one only features
