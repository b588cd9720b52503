"""Admin building blocks shared by every app (config is below every app, so all may import it)."""

from django.contrib import admin


class ReadOnlyMixin:
    """Rows that only services write (ledgers, audit trails, runs): viewable, never edited by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass
