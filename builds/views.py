"""The team's game-build pages: the list, register (the credential shown once), one build
(its endpoint, state, chart of the last day, the key's quota, its settings), rotate and revoke.

Every member sees the builds (never a credential, which exists only in the response that
created it); Admins manage them (teams.policy, "build.manage")."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods

from convai_admin.errors import DomainError
from convai_admin.htmx import confirm_or_act, render_page
from keys.models import ApiKey
from keys.selectors import MAIN_METRICS, Quota, quotas
from teams.decorators import team_view
from teams.http import TeamRequest

from . import services
from .errors import BuildNotFound
from .forms import BuildForm, RegisterBuildForm, RotateForm
from .models import Build, PlayerAuth
from .selectors import is_expired, mints_per_hour, team_build, team_builds

LIST_PAGE = "builds/build_list.html"
DETAIL_PAGE = "builds/build_detail.html"
CREATE_PAGE = "builds/build_create.html"
ISSUED_PAGE = "builds/build_issued.html"
ROTATE_PAGE = "builds/build_rotate.html"
REVOKE_PAGE = "builds/build_revoke.html"


def _build_of(request: TeamRequest, build_id: UUID) -> Build:
    build = team_build(request.team, build_id)
    if build is None:
        raise BuildNotFound()
    return build


def _detail_url(request: TeamRequest, build: Build) -> str:
    return reverse("builds:build-detail", args=[request.team.slug, build.pk])


def token_url(request: TeamRequest, build: Build) -> str:
    return request.build_absolute_uri(reverse("builds:token", args=[build.pk]))


def _settings_from(form: BuildForm) -> services.BuildSettings:
    data = form.cleaned_data
    return services.BuildSettings(
        name=data["name"],
        api_key_id=data["api_key"].pk,
        allowed_origins=data["allowed_origins"],
        burst_per_minute=data["burst_per_minute"],
        per_hour=data["per_hour"],
        expires_at=data["expires_at"],
        player_auth=data.get("player_auth") or PlayerAuth.NONE,
        player_public_key=data.get("player_public_key") or "",
    )


@require_GET
@team_view("build.view")
def build_list(request: TeamRequest) -> HttpResponse:
    context = {
        "team": request.team,
        "builds": list(team_builds(request.team)),
        "now": timezone.now(),
    }
    return render_page(request, LIST_PAGE, context, partial="builds")


@sensitive_variables()
def _issued(request: TeamRequest, issued: services.Issued, *, rotated: bool) -> HttpResponse:
    """The one response that ever shows the credential (and the HS256 secret)."""
    context = {
        "team": request.team,
        "build": issued.build,
        "credential": issued.credential,
        "player_secret": issued.player_secret,
        "token_url": token_url(request, issued.build),
        "rotated": rotated,
    }
    return render(request, ISSUED_PAGE, context)


@require_http_methods(["GET", "POST"])
@team_view("build.manage")
def build_create(request: TeamRequest) -> HttpResponse:
    form = RegisterBuildForm(request.POST or None, team=request.team)
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.register_build(
                actor=request.membership, settings_=_settings_from(form)
            )
        except DomainError as error:
            form.add_error("api_key", error.message)
        else:
            return _issued(request, issued, rotated=False)
    context = {"team": request.team, "form": form}
    return render(request, CREATE_PAGE, context)


def main_quotas(api_key: ApiKey) -> list[Quota]:
    return [quota for quota in quotas(api_key) if quota.metric_id in MAIN_METRICS]


def _detail_context(request: TeamRequest, build: Build, form: BuildForm | None) -> dict[str, Any]:
    manage = request.can.manage_builds and build.revoked_at is None
    if manage and form is None:
        form = BuildForm(initial=BuildForm.initial_for(build), team=request.team)
    bars = mints_per_hour(build)
    return {
        "team": request.team,
        "build": build,
        "token_url": token_url(request, build),
        "expired": is_expired(build),
        "bars": bars,
        "mints_today": sum(bar.count for bar in bars),
        # The main two (keys.selectors.MAIN_METRICS), what a game spends; the rest: key page.
        "quotas": main_quotas(build.api_key) if build.api_key is not None else [],
        "form": form if manage else None,
        "now": timezone.now(),
    }


@require_GET
@team_view("build.view")
def build_detail(request: TeamRequest, build_id: UUID) -> HttpResponse:
    build = _build_of(request, build_id)
    context = _detail_context(request, build, None)
    return render_page(request, DETAIL_PAGE, context, partial="chart")


@require_http_methods(["GET", "POST"])
@team_view("build.manage")
def build_update(request: TeamRequest, build_id: UUID) -> HttpResponse:
    """The settings form of the build page. An invalid form shows the page again with the
    errors and everything typed."""
    build = _build_of(request, build_id)
    if request.method != "POST":
        return redirect(_detail_url(request, build) + "#settings")
    form = BuildForm(request.POST, team=request.team)
    if form.is_valid():
        try:
            services.update_build(
                actor=request.membership, build_id=build.pk, settings_=_settings_from(form)
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Saved the settings of “{form.cleaned_data['name']}”.")
            return redirect(_detail_url(request, build))
    context = _detail_context(request, build, form)
    return render(request, DETAIL_PAGE, context, status=200)


@require_http_methods(["GET", "POST"])
@team_view("build.manage")
def build_rotate(request: TeamRequest, build_id: UUID) -> HttpResponse:
    """GET: choose how long the current credential keeps working. POST: the new one, once."""
    build = _build_of(request, build_id)
    form = RotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.rotate_credential(
                actor=request.membership, build_id=build.pk, overlap=form.overlap_delta
            )
        except DomainError as error:
            messages.error(request, error.message)
            return redirect(_detail_url(request, build))
        return _issued(request, issued, rotated=True)
    context = {
        "team": request.team,
        "build": build,
        "form": form,
        "confirm_action": request.path,
        "cancel_url": _detail_url(request, build),
    }
    return render_page(request, ROTATE_PAGE, context, partial="confirm")


@require_http_methods(["GET", "POST"])
@team_view("build.manage")
def build_revoke(request: TeamRequest, build_id: UUID) -> HttpResponse:
    build = _build_of(request, build_id)

    def act() -> str:
        services.revoke_build(actor=request.membership, build_id=build.pk)
        return (
            f"Revoked “{build.name}”: its credential stopped working, and the tokens it handed "
            "out are being revoked at Convai."
        )

    return confirm_or_act(
        request,
        template=REVOKE_PAGE,
        context={"team": request.team, "build": build},
        act=act,
        done_url=_detail_url(request, build),
    )
