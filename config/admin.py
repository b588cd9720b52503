"""The admin of the platform's own rows: the scheduler's job runs and the processes' heartbeats."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.utils import timezone

from config.admin_base import ReadOnlyAdmin
from config.models import ProcessHeartbeat, SchedulerJobRun


@admin.register(SchedulerJobRun)
class SchedulerJobRunAdmin(ReadOnlyAdmin):
    list_display = ["job_id", "scheduled_for", "started_at", "finished_at", "exit_code"]
    list_filter = ["job_id"]
    fields = ["job_id", "scheduled_for", "started_at", "finished_at", "exit_code", "output_tail"]
    readonly_fields = fields


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(ReadOnlyAdmin):
    """The scheduler and the training workers side by side: is each alive, where, doing what, on which devices."""

    list_display = ["kind", "alive", "host", "pid", "state", "device_list", "beat_at", "started_at"]
    list_filter = ["kind"]
    fields = ["kind", "host", "pid", "state", "device_list", "started_at", "beat_at", "stopped_at"]
    readonly_fields = fields

    @admin.display(description="Alive", boolean=True)
    def alive(self, obj):
        return obj.is_alive(now=timezone.now(), interval=settings.PROCESS_HEARTBEAT_SECONDS)

    @admin.display(description="Devices")
    def device_list(self, obj):
        return ", ".join(f"{d.get('name')} ({d.get('type')})" for d in obj.devices) or "-"
