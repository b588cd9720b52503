"""Runs, dataset versions, model versions (with rollback/forward) and the scheduler's record in the admin.

"Start a training run" (a button on the runs list) records a *queued* run;
the scheduler process (`manage.py runscheduler`, started by `make run`) starts
it within TRAINING_REQUEST_POLL_SECONDS as `manage.py train --queued-only`
(forced). Training thus never runs inside a web worker. Run pages refresh
themselves while the run is in progress. "Cancel this run" on a queued or
running run's page (after a confirmation page) cancels it through
``training.services.runs.training_run_cancel``. Charts are drawn by ``training.charts``,
imported only when an admin asks for one: matplotlib stays out of the web process until then.

Over 400 lines on purpose: five small admins (runs, dataset versions, model versions with their
rollout and service-change forms, the scheduler's record, process heartbeats) share the table and
confirmation helpers at the top; each is short. Split the model-version admin out if it grows.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from config import env
from config.admin_base import ReadOnlyAdmin
from config.domain_errors import DomainError
from config.formats import datetime_display
from config.models import ProcessHeartbeat
from training import selectors
from training.models import (
    LabelAudit,
    DatasetVersion,
    ModelVersion,
    RolloutState,
    RunStatus,
    ServiceChange,
    TrainingRun,
    VersionStatus,
)
from training.services.publishing import model_version_put_in_service
from training.services.rollout import (
    rollout_complete,
    rollout_halt,
    rollout_rollback,
    rollout_set_percent,
    rollout_start,
)
from training.services.runs import training_run_cancel, training_run_request


def _table(headers: list[str], rows: list[list]) -> str:
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join("", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((c,) for c in row)),)
                                                for row in rows))
    return format_html('<table class="training-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)


def _processes_now() -> list[ProcessHeartbeat]:
    """The latest heartbeat per (kind, host) that has not stopped: who trains and schedules, and whether they live."""
    now, interval = timezone.now(), settings.PROCESS_HEARTBEAT_SECONDS
    latest: dict[tuple[str, str], ProcessHeartbeat] = {}
    for row in ProcessHeartbeat.objects.filter(stopped_at=None).order_by("-beat_at")[:50]:
        latest.setdefault((row.kind, row.host), row)
    for row in latest.values():
        row.alive = row.is_alive(now=now, interval=interval)
        row.gpus = ", ".join(d.get("name", "") for d in row.devices if d.get("type") == "GPU")
    return sorted(latest.values(), key=lambda r: (r.kind, r.host))


def _with_interval(metrics: dict, digits: int = 1) -> str:
    """"61.4% (53.5%-68.8%, 153 photos)": an accuracy with its 95 % interval and how many photos it rests on."""
    accuracy = metrics.get("accuracy")
    if accuracy is None:
        return "-"
    interval, photos = metrics.get("interval"), metrics.get("photos")
    if not interval:
        return f"{accuracy:.{digits}%}"
    return f"{accuracy:.{digits}%} ({interval[0]:.1%}-{interval[1]:.1%}, {photos} photos)"


def _run_settings_now() -> dict:
    """The TRAINING_* settings a run started now would read: the settings file as it is now (read afresh, as
    the run's own process will), else this process's environment (the scheduler's too under `make run` and
    the systemd units), else the default; set values checked by their readers."""
    try:
        rows = env.current("TRAINING_")
    except env.EnvFileError as exc:
        return {"settings_file": env.env_file_path(), "settings_file_error": str(exc), "settings_set": [],
                "settings_invalid": []}
    chosen = [row for row in rows if row.source != "default"]
    return {"settings_file": env.env_file_path(), "settings_file_error": "", "settings_set": chosen,
            "settings_invalid": [row for row in chosen if row.error],
            "settings_default_count": len(rows) - len(chosen)}


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "outcome_and_why", "trigger", "progress", "dataset_link", "strategy",
                    "gate_accuracy", "started_at", "duration"]
    list_filter = ["status", "outcome", "trigger"]
    change_list_template = "admin/training/trainingrun/change_list.html"
    change_form_template = "admin/training/trainingrun/change_form.html"
    fieldsets = [
        ("Run", {"fields": ["status", "outcome", "error", "cancel_state", "progress", "trigger", "force", "requested_by",
                            "started_at", "heartbeat_at", "finished_at", "host", "pid"]}),
        ("Data and strategy", {"fields": ["dataset_link", "labels", "strategy", "estimate_text", "feature_stats",
                                          "hparams_table"]}),
        ("Results", {"fields": ["metrics_table", "decisions_list", "phase_table", "curves", "confusion",
                                "model_version_link"]}),
        ("Log", {"fields": ["log_text"]}),
    ]
    readonly_fields = [f for _, opts in fieldsets for f in opts["fields"]]

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("request/", view(self.request_view), name="training_trainingrun_request"),
            path("<int:run_id>/cancel/", view(self.cancel_view), name="training_trainingrun_cancel"),
            path("<int:run_id>/curves.png", view(self.curves_view), name="training_trainingrun_curves"),
            path("<int:run_id>/confusion-<str:variant>.png", view(self.confusion_view),
                 name="training_trainingrun_confusion"),
            *super().get_urls(),
        ]

    def has_request_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff and request.user.has_perm("training.add_trainingrun")

    def has_cancel_permission(self, request) -> bool:
        # The runs stay read-only in the admin; "Can change training run" is what allows cancelling one.
        return request.user.is_active and request.user.is_staff and request.user.has_perm("training.change_trainingrun")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        cancellable = run is not None and not run.is_finished and run.cancel_requested_at is None
        extra_context = {**(extra_context or {}),
                         "can_cancel": cancellable and self.has_cancel_permission(request),
                         "cancel_url": reverse("admin:training_trainingrun_cancel", args=[run.pk]) if run else ""}
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_request_run": self.has_request_permission(request),
                         "request_url": reverse("admin:training_trainingrun_request"),
                         "active_run": TrainingRun.objects.filter(status__in=[RunStatus.RUNNING, RunStatus.QUEUED])
                         .order_by("id").first(),
                         "processes": _processes_now(), "processes_url": reverse("admin:crowdlens_processheartbeat_changelist")}
        return super().changelist_view(request, extra_context)

    def request_view(self, request):
        """GET: the confirmation page (whose settings apply); POST: queue the run."""
        if not self.has_request_permission(request):
            raise PermissionDenied
        if request.method == "GET":
            context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Start a training run?",
                       "poll_seconds": settings.TRAINING_REQUEST_POLL_SECONDS, "remote": settings.TRAINING_WORKER == "remote",
                       "changelist_url": reverse("admin:training_trainingrun_changelist"), **_run_settings_now()}
            return TemplateResponse(request, "admin/training/trainingrun/request_confirmation.html", context)
        if request.method != "POST":
            return HttpResponseNotAllowed(["GET", "POST"])
        run, created = training_run_request(user=request.user)
        if created and settings.TRAINING_WORKER == "remote":
            self.message_user(request, f"Run #{run.pk} requested: a training worker (manage.py trainworker) takes it "
                                       f"within {settings.TRAINING_WORKER_POLL_SECONDS} s.", messages.SUCCESS)
        elif created:
            self.message_user(request, f"Run #{run.pk} requested: the scheduler starts it within "
                                       f"{settings.TRAINING_REQUEST_POLL_SECONDS} s (manage.py train --queued-only), "
                                       + (f"with the settings file {env.env_file_path()} as it reads when the run starts."
                                          if env.env_file_path() else "with the scheduler's environment."),
                              messages.SUCCESS)
        else:
            self.message_user(request, f"Run #{run.pk} is already waiting for the scheduler.", messages.INFO)
        return HttpResponseRedirect(reverse("admin:training_trainingrun_changelist"))

    def cancel_view(self, request, run_id: int):
        """GET: the confirmation page; POST: cancel (queued) or ask the running process to stop."""
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        run = get_object_or_404(TrainingRun, pk=run_id)
        change_url = reverse("admin:training_trainingrun_change", args=[run.pk])
        if request.method == "POST":
            try:
                run, changed = training_run_cancel(run=run, by=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return HttpResponseRedirect(change_url)
            if run.status == RunStatus.CANCELLED:
                self.message_user(request, f"Run #{run.pk} was cancelled before it started.", messages.SUCCESS)
            elif changed:
                self.message_user(request, f"Cancel of run #{run.pk} requested: the process stops at its next check, "
                                           "within seconds, and the run ends cancelled.", messages.SUCCESS)
            else:
                self.message_user(request, f"Cancel of run #{run.pk} was already requested; the process is stopping.",
                                  messages.INFO)
            return HttpResponseRedirect(change_url)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        context = {**self.admin_site.each_context(request), "opts": self.opts, "run": run, "change_url": change_url,
                   "title": f"Cancel run #{run.pk}?", "cancellable": not run.is_finished}
        return TemplateResponse(request, "admin/training/trainingrun/cancel_confirmation.html", context)

    def curves_view(self, request, run_id: int):
        from training import charts  # matplotlib loads with the first chart, not with the admin

        run = get_object_or_404(TrainingRun, pk=run_id)
        return HttpResponse(charts.curves_png(run.history), content_type="image/png")

    def confusion_view(self, request, run_id: int, variant: str):
        from training import charts

        run = get_object_or_404(TrainingRun, pk=run_id)
        metrics = run.metrics.get(variant)
        if not metrics:
            return HttpResponse(status=404)
        title = f"run #{run.pk} {variant}: accuracy {metrics.get('accuracy', 0):.1%}"
        return HttpResponse(charts.confusion_png(metrics.get("confusion") or [], run.labels, title),
                            content_type="image/png")

    # --- columns and fields

    @admin.display(description="Progress")
    def progress(self, obj):
        if obj.status in (RunStatus.QUEUED,):
            return "waiting for a training worker" if settings.TRAINING_WORKER == "remote" else "waiting for the scheduler"
        if obj.status == RunStatus.SKIPPED:
            return "skipped: nothing was trained"  # a bar would suggest work that never happened
        if obj.status == RunStatus.CANCELLED and obj.started_at is None:
            return "cancelled before it started"
        return format_html('<progress value="{}" max="100"></progress> {}% {}', round(obj.percent), round(obj.percent),
                           obj.phase)

    @admin.display(description="Cancel")
    def cancel_state(self, obj):
        if obj.cancel_requested_at is None:
            return "-"
        asked = (f"requested at {datetime_display(obj.cancel_requested_at)} "
                 f"by {obj.cancel_requested_by or 'a deleted user'}")
        if obj.status == RunStatus.RUNNING:
            return f"Cancel {asked}; the run stops at its next check (within seconds)."
        if obj.status == RunStatus.CANCELLED:
            return f"Cancel {asked}."
        return f"Cancel {asked}, as the run was ending: it ended {obj.get_status_display().lower()}."

    @admin.display(description="Dataset")
    def dataset_link(self, obj):
        if not obj.dataset_version_id:
            return "-"
        url = reverse("admin:training_datasetversion_change", args=[obj.dataset_version_id])
        return format_html('<a href="{}">{}</a>', url, obj.dataset_version)

    @admin.display(description=f"Accuracy ({settings.TRAINING_GATE_VARIANT})")
    def gate_accuracy(self, obj):
        metrics = obj.metrics.get(settings.TRAINING_GATE_VARIANT) or {}
        return "-" if metrics.get("accuracy") is None else _with_interval(metrics)

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_and_why(self, obj):
        """One column, so that the list fits a 1280 px screen: the outcome, and under it why a finished run
        failed or published nothing."""
        outcome = obj.get_outcome_display() if obj.outcome else "-"
        why = obj.why_nothing_published()
        return format_html("{}<br><small>Why nothing was published: {}</small>", outcome, why) if why else outcome

    @admin.display(description="Estimate and choices")
    def estimate_text(self, obj):
        from training.services.execute import estimate_sentence

        estimate = obj.estimate or {}
        if not estimate:
            return "-"
        choice = estimate.get("choice") or {}
        lines = [estimate_sentence(estimate), f"Strategy: {choice.get('why', obj.strategy)}."]
        if "C" in choice:
            lines.append(f"Head: {choice.get('head')}, L2 C={choice['C']:g} chosen by {choice.get('folds')}-fold "
                         "cross-validation among " + ", ".join(f"C={c} {s:.1%}" for c, s in choice.get(
                             "cv_accuracy_by_C", {}).items()) + ".")
        lines.append(f"Default variant {estimate.get('default_variant')}: {estimate.get('default_variant_why')}")
        return format_html_join("", "<p>{}</p>", ((line,) for line in lines))

    @admin.display(description="Duration")
    def duration(self, obj):
        if not obj.started_at:
            return "-"
        end = obj.finished_at or obj.heartbeat_at or obj.started_at
        seconds = int((end - obj.started_at).total_seconds())
        return f"{seconds // 60} min {seconds % 60} s"

    @admin.display(description="Model version")
    def model_version_link(self, obj):
        if not obj.model_version_id:
            return "-"
        url = reverse("admin:training_modelversion_change", args=[obj.model_version_id])
        return format_html('<a href="{}">{}</a>', url, obj.model_version)

    @admin.display(description="Hyper-parameters")
    def hparams_table(self, obj):
        flat = {}
        for key, value in (obj.hparams or {}).items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return _table(["name", "value"], [[k, v] for k, v in flat.items()]) if flat else "-"

    @admin.display(description="Metrics per variant (test split, in LiteRT)")
    def metrics_table(self, obj):
        if not obj.metrics:
            return "-"
        rows = [[variant, _with_interval(m, 2), f"{m.get('size_bytes', 0) / 1024:.0f} KiB",
                 f"{m.get('latency_ms', 0):.2f} ms", m.get("test_examples", "")] for variant, m in obj.metrics.items()]
        service = (obj.gate or {}).get("service")
        if service:
            rows.append([f"v{service['version']} in service ({service['variant']})", f"{service['accuracy']:.2%}",
                         "", "", ""])
        return _table(["variant", "top-1", "size", "latency", "test photos"], rows)

    @admin.display(description="Decisions")
    def decisions_list(self, obj):
        if not obj.decisions:
            return "-"
        return _table(["when", "decision", "detail"], [[datetime_display(d["at"]), d["decision"], d["detail"]]
                                                       for d in obj.decisions])

    @admin.display(description="Time per phase")
    def phase_table(self, obj):
        if not obj.phase_seconds:
            return "-"
        total = sum(obj.phase_seconds.values())
        return _table(["phase", "seconds"], [*([k, f"{v:.1f}"] for k, v in obj.phase_seconds.items()),
                                             ["total", f"{total:.1f}"]])

    @admin.display(description="Training curves")
    def curves(self, obj):
        if not obj.history:
            return "-"
        return format_html('<img src="{}" alt="training curves" style="max-width:100%">',
                           reverse("admin:training_trainingrun_curves", args=[obj.pk]))

    @admin.display(description="Confusion matrices")
    def confusion(self, obj):
        if not obj.metrics:
            return "-"
        return format_html_join("", '<img src="{}" alt="confusion matrix {}" style="max-width:48%;margin:4px">',
                                ((reverse("admin:training_trainingrun_confusion", args=[obj.pk, v]), v)
                                 for v in obj.metrics))

    @admin.display(description="Log")
    def log_text(self, obj):
        return format_html('<pre style="max-height:30em;overflow:auto;white-space:pre-wrap">{}</pre>', obj.log or "")


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "cutoff", "photo_count", "label_count", "excluded", "flagged"]
    fields = ["fingerprint", "cutoff", "created_at", "photo_count", "labels", "split_table", "excluded_labels",
              "flagged_labels", "manifest_size"]
    readonly_fields = fields

    @admin.display(description="Labels")
    def label_count(self, obj):
        return len(obj.labels)

    @admin.display(description="Left out")
    def excluded(self, obj):
        return len(obj.excluded_labels)

    @admin.display(description="Under prototype target")
    def flagged(self, obj):
        return len(obj.flagged_labels)

    @admin.display(description="Photos per split")
    def split_table(self, obj):
        return _table(["label", "train", "val", "test"],
                      [[slug, *(obj.counts.get(s, {}).get(slug, 0) for s in ("train", "val", "test"))]
                       for slug in obj.labels])

    @admin.display(description="Manifest")
    def manifest_size(self, obj):
        return f"{len(obj.manifest)} photos (id, sha256, label, split), stored on this row"


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["version", "status", "in_service_mark", "published_at", "strategy", "dataset_version",
                    "accuracies", "run"]
    list_filter = ["status"]
    actions = ["put_in_service"]
    fields = ["version", "status", "in_service", "rollout_state", "published_at", "created_at", "strategy",
              "dataset_version", "run", "labels", "min_app_version", "default_variant", "default_variant_why",
              "files_table", "field_accuracy_table",
              "history_table", "rollout_history"]
    readonly_fields = fields
    change_form_template = "admin/training/modelversion/change_form.html"

    def get_urls(self):
        return [path("<int:version_id>/rollout/", self.admin_site.admin_view(self.rollout_view),
                     name="training_modelversion_rollout"), *super().get_urls()]

    def _rollout_actions(self, version: ModelVersion) -> list[tuple[str, str]]:
        """What the admin may do with this version's rollout, as (action, label) for the form."""
        rollout = selectors.rollout_open()
        if rollout is not None and rollout.model_version_id == version.pk:
            actions = [("percent", "Widen or narrow" if rollout.state == RolloutState.ACTIVE else "Resume")]
            if rollout.state == RolloutState.ACTIVE:
                actions.append(("halt", "Halt (every device gets the version in service)"))
            return [*actions, ("complete", "Complete (in service for every device)"),
                    ("rollback", "Roll back (end it; its devices go back)")]
        if rollout is None and version.status == VersionStatus.PUBLISHED and not version.in_service:
            return [("start", "Start a staged rollout")]
        return []

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        rollout = selectors.rollout_open()
        allowed = version is not None and self._may_change_versions(request)
        extra_context = {**(extra_context or {}),
                         "rollout_actions": self._rollout_actions(version) if allowed else [],
                         "rollout_percent": rollout.percent if rollout is not None else 10,
                         "rollout_url": reverse("admin:training_modelversion_rollout", args=[version.pk]) if version else ""}
        return super().change_view(request, object_id, form_url, extra_context)

    def rollout_view(self, request, version_id: int):
        """GET: what the change would do, to confirm; POST: do it through training.services.rollout."""
        if not self._may_change_versions(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=version_id)
        change_url = reverse("admin:training_modelversion_change", args=[version.pk])
        data = request.POST if request.method == "POST" else request.GET
        action = data.get("action", "")
        if action not in dict(self._rollout_actions(version)):
            self.message_user(request, f"That rollout change is not possible for {version} now.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        percent = None
        if action in ("start", "percent"):
            try:
                percent = int(data.get("percent", ""))
            except ValueError:
                percent = -1
            if not 1 <= percent <= 100:
                self.message_user(request, "The percentage must be a whole number from 1 to 100.", messages.ERROR)
                return HttpResponseRedirect(change_url)
        current = selectors.model_in_service()
        base = f"v{current.version}" if current else "no version"
        if request.method == "POST":
            try:
                if action == "start":
                    rollout_start(version=version.version, percent=percent, user=request.user)
                elif action == "percent":
                    rollout_set_percent(percent=percent, user=request.user)
                elif action == "halt":
                    rollout_halt(user=request.user)
                elif action == "complete":
                    rollout_complete(user=request.user)
                else:
                    rollout_rollback(user=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return HttpResponseRedirect(change_url)
            done = {"start": f"{version} now goes to {percent} % of devices (by install id); the others keep {base}.",
                    "percent": f"{version} now goes to {percent} % of devices.",
                    "halt": f"Rollout of {version} halted: every device gets {base}.",
                    "complete": f"{version} is now in service for every device.",
                    "rollback": f"Rollout of {version} rolled back: every device gets {base}."}[action]
            if action == "percent" and percent == 100:
                done = f"{version} is now in service for every device."
            self.message_user(request, done, messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        summary, verb = {
            "start": (f"Start a staged rollout of {version} to {percent} % of devices?", f"roll {version} out to {percent} %"),
            "percent": (f"Change the rollout of {version} to {percent} % of devices?", f"serve {version} to {percent} %"),
            "halt": (f"Halt the rollout of {version}?", "halt it"),
            "complete": (f"Put {version} in service for every device?", f"complete the rollout of {version}"),
            "rollback": (f"Roll back the rollout of {version}?", "roll it back"),
        }[action]
        consequence = {
            "halt": f"Every device gets {base} from its next check; the percentage is kept to resume later.",
            "complete": f"Every device, with or without an install id, gets {version} from its next check.",
            "rollback": f"The devices that had {version} get {base} again from their next check; the rollout ends.",
        }.get(action, f"Phones that send an install id whose bucket (0-99) is under {percent} get {version}; "
                      f"the others, and phones without an install id, keep {base}. Widening later keeps these devices.")
        context = {**self.admin_site.each_context(request), "opts": self.opts, "version": version, "title": summary,
                   "summary": summary, "consequence": consequence, "verb": verb, "action": action, "percent": percent,
                   "change_url": change_url}
        return TemplateResponse(request, "admin/training/modelversion/rollout_confirmation.html", context)

    def has_change_permission(self, request, obj=None):
        # The list's put-in-service action needs the change permission; a version's own page changes nothing
        # by its form, so it opens read-only (no Save buttons; a POST to it is refused).
        return obj is None and self._may_change_versions(request)

    @staticmethod
    def _may_change_versions(request) -> bool:
        """Putting in service and staged rollouts (their own confirmed forms) need the change permission."""
        return request.user.has_perm("training.change_modelversion")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset_version", "run")

    @admin.display(description="In service", boolean=True)
    def in_service_mark(self, obj):
        return bool(obj.in_service)

    @admin.display(description="Top-1 per variant")
    def accuracies(self, obj):
        return ", ".join(f"{v} {_with_interval(m)}" for v, m in obj.metrics.items())

    @admin.display(description="Files")
    def files_table(self, obj):
        return _table(["variant", "model", "size", "sha256", "labels", "metadata"],
                      [[f.variant, f.model_key, f"{f.size_bytes / 1024:.0f} KiB", f.sha256[:16] + "…", f.labels_key,
                        f.metadata_key] for f in obj.files.all()]) if obj.pk else "-"

    @admin.display(description="Staged rollout")
    def rollout_state(self, obj):
        rollout = obj.rollouts.first() if obj.pk else None
        if rollout is None:
            return "-"
        return f"{rollout.get_state_display()}: {rollout.percent} % of devices (since {rollout.created_at:%Y-%m-%d %H:%M})"

    @admin.display(description="Rollout history")
    def rollout_history(self, obj):
        rows = [[c.created_at, c.action, "-" if c.percent_from is None else f"{c.percent_from} %", f"{c.percent_to} %",
                 c.get_state_display(), c.changed_by or "-"]
                for rollout in (obj.rollouts.prefetch_related("changes__changed_by") if obj.pk else [])
                for c in rollout.changes.all()]
        return _table(["when", "change", "from", "to", "state", "by"], rows) if rows else "-"

    @admin.display(description="Field accuracy (phones' own predictions vs approved labels)")
    def field_accuracy_table(self, obj):
        if not obj.pk:
            return "-"
        field = selectors.model_version_field_accuracy(version=obj.version)
        if not field["samples"]:
            return "No approved photo was uploaded with this version's prediction yet."
        rows = [[r["label"], f"{r['accuracy']:.1%}", r["matched"], r["samples"]] for r in field["per_label"]]
        rows.append(["all labels", f"{field['accuracy']:.1%}", field["matched"], field["samples"]])
        return _table(["approved label", "phone was right", "right", "photos"], rows)

    @admin.display(description="Service changes")
    def history_table(self, obj):
        changes = ServiceChange.objects.filter(to_version=obj.version) | ServiceChange.objects.filter(from_version=obj.version)
        return _table(["when", "from", "to", "why", "by"],
                      [[datetime_display(c.created_at), c.from_version or "-", c.to_version, c.reason,
                        c.changed_by or "-"] for c in changes.order_by("id")])

    @admin.action(description="Put the selected version in service (rollback / forward)", permissions=["change"])
    def put_in_service(self, request, queryset):
        versions = list(queryset.values_list("version", "status"))
        if len(versions) != 1:
            self.message_user(request, "Select exactly one version to put in service.", messages.ERROR)
            return
        number, status = versions[0]
        if status != VersionStatus.PUBLISHED:
            self.message_user(request, f"v{number} is {status}; only published versions can be in service.",
                              messages.ERROR)
            return
        try:
            model_version_put_in_service(version=number, user=request.user)
        except DomainError as exc:  # the service checks again under the lock
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"v{number} is now in service: phones get it from /api/v1/models/latest/.",
                          messages.SUCCESS)


@admin.register(ServiceChange)
class ServiceChangeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "from_version", "to_version", "reason", "changed_by"]


@admin.register(LabelAudit)
class LabelAuditAdmin(ReadOnlyAdmin):
    """The nightly label audits: photos sent back to review, outliers ("unusual for its label") and
    near-duplicate clusters across volunteers, each linked to the photo's page (docs/review.md)."""

    list_display = ["started_at", "photos", "labels", "issues_found", "flagged_count", "outlier_count",
                    "cluster_count", "seconds", "peak_memory_mb"]
    fields = ["started_at", "finished_at", "features", "photos", "labels", "issues_found", "flagged_links", "issue_table",
              "outlier_links", "cluster_links", "seconds", "peak_memory_mb", "error"]
    readonly_fields = fields

    @admin.display(description="Sent back")
    def flagged_count(self, obj):
        return len(obj.flagged)

    @admin.display(description="Outliers")
    def outlier_count(self, obj):
        return len(obj.outliers)

    @admin.display(description="Near-duplicate clusters")
    def cluster_count(self, obj):
        return len(obj.duplicate_clusters)

    @staticmethod
    def _photo(photo_id: int):
        return format_html('<a href="{}">#{}</a>', reverse("admin:collector_photo_change", args=[photo_id]), photo_id)

    @admin.display(description="Sent back to review")
    def flagged_links(self, obj):
        return format_html_join(", ", "{}", ((self._photo(pid),) for pid in obj.flagged)) or "none"

    @admin.display(description="Likely label errors (most likely first)")
    def issue_table(self, obj):
        return format_html_join("; ", "{} {} → {} ({})", (
            (self._photo(i["photo"]), i["label"], i["suggested"], f"{i['confidence']:.2f}") for i in obj.issues[:50]
        )) or "none"

    @admin.display(description="Unusual for their label")
    def outlier_links(self, obj):
        return format_html_join("; ", "{} {} (z {})", ((self._photo(o["photo"]), o["label"], o["z"])
                                                        for o in obj.outliers[:50])) or "none"

    @admin.display(description="Near-duplicates across volunteers")
    def cluster_links(self, obj):
        return format_html_join("; ", "{}", ((format_html_join(" ≈ ", "{}", ((self._photo(pid),) for pid in cluster)),)
                                              for cluster in obj.duplicate_clusters[:50])) or "none"
