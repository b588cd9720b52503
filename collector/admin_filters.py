"""List filters of the photo review queue (collector.admin_review)."""

from __future__ import annotations

from django.contrib import admin

from collector.models import Photo, PhotoStatus


class StatusFilter(admin.SimpleListFilter):
    """Defaults to the pending queue: that is what a reviewer opens the page for."""

    title = "status"
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request, model_admin):
        return [*PhotoStatus.choices, (self.ALL, "All")]

    def _effective(self):
        return self.value() or PhotoStatus.PENDING

    def queryset(self, request, queryset):
        value = self._effective()
        if value == self.ALL:
            return queryset
        if value not in PhotoStatus.values:
            return queryset.none()
        return queryset.filter(status=value)

    def choices(self, changelist):
        current = self._effective()
        for value, title in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": title,
            }


class NearDuplicateFilter(admin.SimpleListFilter):
    title = "near-duplicate"
    parameter_name = "near_duplicate"

    def lookups(self, request, model_admin):
        return [("yes", "Yes (looks like an earlier photo)"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(near_duplicate_of__isnull=False)
        if self.value() == "no":
            return queryset.filter(near_duplicate_of__isnull=True)
        return queryset


class ChallengeFilter(admin.SimpleListFilter):
    """Photo.challenge_id is an opaque id (collector never imports the challenges app)."""

    title = "challenge"
    parameter_name = "challenge"
    RECENT = 30

    def lookups(self, request, model_admin):
        ids = (
            Photo.objects.exclude(challenge_id__isnull=True)
            .values_list("challenge_id", flat=True)
            .distinct()
            .order_by("-challenge_id")[: self.RECENT]
        )
        return [("none", "No challenge"), ("any", "Any challenge"), *((str(i), f"Challenge #{i}") for i in ids)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(challenge_id__isnull=True)
        if value == "any":
            return queryset.filter(challenge_id__isnull=False)
        if value:
            return queryset.filter(challenge_id=int(value)) if value.isdigit() else queryset.none()
        return queryset
