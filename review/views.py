"""The audit log's pages for a team's Admins and Owners: review, details, export, verify.

They live outside audit/ because they are team pages: they need teams (`team_view`, the
policy), and audit imports nothing of ours (design.md), since every app records into it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import reauthentication_required
from audit import export
from audit.chain import last_checkpoint
from audit.models import AuditEvent, Outcome
from audit.selectors import (
    TARGET_TYPES,
    Criteria,
    chain_of,
    describe_changes,
    events_matching,
    id_bound_before,
    last_verification,
    page_of,
    team_event,
)
from audit.services import chain_scope, record_export, verify_team_chain
from teams.decorators import team_view
from teams.http import TeamRequest
from teams.selectors import membership_ids_of

from .forms import AuditFilterForm

TEMPLATE = "audit/audit_log.html"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _filters(request: TeamRequest) -> tuple[AuditFilterForm, Criteria]:
    chain = chain_of(request.team.pk)
    form = AuditFilterForm(request.GET or None, chain=chain)
    if form.is_bound and form.is_valid():
        criteria = form.criteria()
        if criteria.member_id is not None:
            criteria.member_memberships = membership_ids_of(request.team, criteria.member_id)
        return form, criteria
    return form, Criteria(errors=form.warnings() if form.is_bound else [])


@require_GET
@team_view("audit.review")
def audit_log(request: TeamRequest) -> HttpResponse:
    form, criteria = _filters(request)
    events = events_matching(request.team.pk, criteria)
    page = page_of(
        events, after=_int(request.GET.get("after")), before=_int(request.GET.get("before"))
    )
    htmx_results = (
        getattr(request, "htmx", False) and request.headers.get("HX-Target") == "audit-results"
    )
    context: dict[str, Any] = {
        "team": request.team,
        "form": form,
        "criteria": criteria,
        "page": page,
        "rows": [_row(event) for event in page.events],
        "filtered": criteria.filtered,
        "can_verify": request.can.verify_audit,
        "can_export": request.can.export_audit,
        "target_types": TARGET_TYPES,
        "member_label": _member_label(form, criteria),
        "last_verified": last_verification(request.team.pk) if not htmx_results else None,
    }
    name = f"{TEMPLATE}#results" if htmx_results else TEMPLATE
    response = render(request, name, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _member_label(form: AuditFilterForm, criteria: Criteria) -> str:
    if criteria.member_id is None:
        return ""
    names = dict(cast(Any, form.fields["actor"]).choices)
    return str(names.get(criteria.member_id) or f"user #{criteria.member_id}")


def _row(event: AuditEvent) -> dict[str, Any]:
    return {"event": event, "outcome_badge": OUTCOME_BADGES.get(event.outcome, "muted")}


OUTCOME_BADGES: dict[str, str] = {
    Outcome.SUCCESS.value: "success",
    Outcome.FAILURE.value: "danger",
    Outcome.DENIED.value: "warning",
    # A write Convai never answered (timeout): it may or may not have happened remotely.
    Outcome.UNKNOWN.value: "unknown",
}


@require_GET
@team_view("audit.review")
def audit_event(request: TeamRequest, event_id: int) -> HttpResponse:
    event = team_event(request.team.pk, event_id)
    if event is None:
        raise Http404("No such event in this team's log.")
    htmx = getattr(request, "htmx", False)
    if htmx and request.GET.get("collapsed"):
        return HttpResponse("")
    details = dict(event.details or {})
    context = {
        "team": request.team,
        "event": event,
        "outcome_badge": OUTCOME_BADGES.get(event.outcome, "muted"),
        "changes": describe_changes(details),
        "convai_status": details.get("convai_status"),
        "convai_message": details.get("convai_message"),
        "key_used": details.get("key_used") or details.get("last_four"),
        "duration_ms": details.get("duration_ms"),
        "other_details": {
            k: v
            for k, v in sorted(details.items())
            if k not in {"changes", "convai_status", "convai_message", "key_used", "duration_ms"}
            and not (isinstance(v, list) and len(v) == 2)
        },
    }
    name = "audit/audit_event.html#detail" if htmx else "audit/audit_event.html"
    response = render(request, name, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
@team_view("audit.export")
@reauthentication_required
def audit_export(request: TeamRequest, fmt: str) -> HttpResponse:
    _form, criteria = _filters(request)
    if criteria.errors:
        return HttpResponse(
            "The filters are not valid: " + " ".join(criteria.errors),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    exported = record_export(
        actor=request.user, team=request.team, fmt=fmt, filters=request.GET.urlencode()
    )
    # Everything up to the export's own event, which is the proof it happened. The upper id
    # bound is one number handed to the export's keyset batches, not a second `id <` filter:
    # SQLite would keep the looser of two bounds and rescan from the top for every batch.
    below = exported.pk
    if criteria.until is not None:
        below = min(below, id_bound_before(request.team.pk, criteria.until + timedelta(days=1)))
        criteria = replace(criteria, until=None)
    events = events_matching(request.team.pk, criteria)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if fmt == "csv":
        body, content_type = export.csv_rows(events, below=below), "text/csv; charset=utf-8"
    else:
        body, content_type = export.jsonl(events, below=below), "application/x-ndjson"
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="audit-{request.team.slug}-{stamp}.{fmt}"'
    )
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # let a proxy pass the first bytes on at once
    # team_view's signature says HttpResponse; a streaming response serves the same caller.
    return cast(HttpResponse, response)


@require_POST
@team_view("audit.verify")
def audit_verify(request: TeamRequest) -> HttpResponse:
    scope = chain_scope(request.team)
    report = verify_team_chain(actor=request.user, team=request.team)
    context = {
        "team": request.team,
        "report": report,
        "problems": report.problems[:20],
        "more_problems": max(0, len(report.problems) - 20),
        "checkpoint": last_checkpoint(scope),
    }
    htmx = getattr(request, "htmx", False)
    return render(
        request, "audit/audit_verify.html#result" if htmx else "audit/audit_verify.html", context
    )
