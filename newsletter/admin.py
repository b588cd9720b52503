"""Staff side: preview an edition, edit its introduction, send a test to yourself, hold or release it,
and watch it go out (progress by delivery status)."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from config.domain_errors import DomainError
from newsletter import emails, selectors, services
from newsletter.models import Delivery, Edition, EditionStatus, Subscriber


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "status", "user", "confirmed_at", "failure_count", "created_at"]
    list_filter = ["status"]
    search_fields = ["email", "user__username"]
    readonly_fields = ["created_at", "confirmation_sent_at", "confirmed_at", "unsubscribed_at", "disabled_at",
                       "last_failure"]
    raw_id_fields = ["user"]


def _progress_html(edition: Edition) -> str:
    counts = selectors.edition_progress(edition)
    total = counts["total"]
    done = counts["sent"] + counts["failed"] + counts["skipped"]
    if not total:
        return "No deliveries yet" if edition.status != EditionStatus.SENT else "Sent to nobody"
    return format_html(
        '<progress max="{}" value="{}" style="width:12em"></progress> {} of {} sent · {} waiting to retry · '
        "{} failed · {} skipped · {} pending · {} being sent",
        total, done, counts["sent"], total, counts["retry"], counts["failed"], counts["skipped"], counts["pending"],
        counts["claimed"],
    )


@admin.register(Edition)
class EditionAdmin(admin.ModelAdmin):
    list_display = ["subject", "period_end", "status", "scheduled_for", "progress"]
    list_filter = ["status"]
    fields = ["subject", "introduction", "status", "period_start", "period_end", "scheduled_for", "progress",
              "preview", "released_by", "released_at", "sending_started_at", "sent_at", "content_json"]
    readonly_fields = ["status", "period_start", "period_end", "scheduled_for", "progress", "preview", "released_by",
                       "released_at", "sending_started_at", "sent_at", "content_json"]
    actions = ["hold", "release", "send_test"]
    change_form_template = "admin/newsletter/edition/change_form.html"

    change_list_template = "admin/newsletter/edition/change_list.html"

    def has_add_permission(self, request):
        return False  # editions are composed for their period, by `newsletter_send` or "Compose the next edition now"

    @admin.display(description="Progress")
    def progress(self, obj: Edition):
        return _progress_html(obj)

    @admin.display(description="Preview")
    def preview(self, obj: Edition):
        url = reverse("admin:newsletter_edition_preview", args=[obj.pk])
        return format_html('<a href="{}" target="_blank" rel="noopener">Open the HTML preview</a>', url)

    @admin.display(description="Composed sections")
    def content_json(self, obj: Edition):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(obj.content, indent=2))

    def get_urls(self):
        return [
            path("<int:edition_id>/preview/", self.admin_site.admin_view(self.preview_view),
                 name="newsletter_edition_preview"),
            path("<int:edition_id>/do/<str:what>/", self.admin_site.admin_view(require_POST(self.do_view)),
                 name="newsletter_edition_do"),
            path("compose-now/", self.admin_site.admin_view(require_POST(self.compose_now_view)),
                 name="newsletter_edition_compose_now"),
        ] + super().get_urls()

    def compose_now_view(self, request):
        """Compose the next slot's edition from the period so far, then open it (preview, edit, release)."""
        if not self.has_change_permission(request):
            return HttpResponse(status=403)
        try:
            edition = services.edition_compose(early=True)
        except DomainError as exc:
            self.message_user(request, str(exc), messages.WARNING)
            return HttpResponseRedirect(reverse("admin:newsletter_edition_changelist"))
        self.message_user(request, f"Composed “{edition.subject}” ({edition.get_status_display().lower()}); it goes "
                                   f"out at its slot, {timezone.localtime(edition.scheduled_for):%Y-%m-%d %H:%M}. Preview it below.",
                          messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:newsletter_edition_change", args=[edition.pk]))

    def preview_view(self, request, edition_id: int):
        edition = get_object_or_404(Edition, pk=edition_id)
        rendered = emails.edition(edition, test=True)
        return HttpResponse(rendered.html.replace(emails.UNSUBSCRIBE_MARKER, "#unsubscribe-link"))

    def do_view(self, request, edition_id: int, what: str):
        if not self.has_change_permission(request):
            return HttpResponse(status=403)
        queryset = Edition.objects.filter(pk=edition_id)
        action = {"hold": self.hold, "release": self.release, "send_test": self.send_test}.get(what)
        if action is not None:
            action(request, queryset)
        return HttpResponseRedirect(reverse("admin:newsletter_edition_change", args=[edition_id]))

    @admin.action(description="Hold (do not send)", permissions=["change"])
    def hold(self, request, queryset):
        done = sum(services.edition_hold(edition_id=e.pk) for e in queryset)
        self.message_user(request, f"{done} edition(s) held.", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Release (approve for sending)", permissions=["change"])
    def release(self, request, queryset):
        done = sum(services.edition_release(edition_id=e.pk, user=request.user) for e in queryset)
        self.message_user(request, f"{done} edition(s) released.", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Send a test to my email address", permissions=["change"])
    def send_test(self, request, queryset):
        for edition in queryset:
            try:
                services.edition_send_test(edition_id=edition.pk, to_email=request.user.email)
            except DomainError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return
            self.message_user(request, f"Test of “{edition.subject}” sent to {request.user.email}.", messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["edition", "subscriber", "status", "attempts", "sent_at", "next_attempt_at", "last_error"]
    list_filter = ["status", "edition"]
    search_fields = ["subscriber__email"]
    list_select_related = ["edition", "subscriber"]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
