from django.contrib import admin

from collector.models import Label, Photo, PhotoReview, Volunteer


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "active", "prototype_target", "production_target"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]


@admin.register(Volunteer)
class VolunteerAdmin(admin.ModelAdmin):
    list_display = ["display_name", "user", "consent_training", "consent_public_credit", "created_at"]
    search_fields = ["display_name", "user__email"]


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "status", "volunteer", "created_at"]
    list_filter = ["status", "label"]


@admin.register(PhotoReview)
class PhotoReviewAdmin(admin.ModelAdmin):
    list_display = ["photo", "decision", "reason", "reviewer", "created_at"]
