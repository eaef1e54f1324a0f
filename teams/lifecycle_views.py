"""The team's lifecycle pages: hand over, archive, unarchive, delete (teams.lifecycle does
the work). Each lasting change sits behind a typed confirmation, the team's name; a refusal
or a race becomes the form's error, with what was typed kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from convai_admin.errors import DomainError, NotFound
from convai_admin.htmx import act_then_redirect

from . import lifecycle, selectors
from .decorators import team_view
from .forms import TeamNameConfirmationForm, TransferOwnershipForm
from .http import TeamRequest
from .models import Role


def _confirmed(
    request: TeamRequest,
    form: forms.Form,
    *,
    template: str,
    act: Callable[[dict[str, Any]], str],
    done_url: Callable[[], str],
    context: dict[str, Any] | None = None,
) -> HttpResponse:
    """GET: the page. POST: once the form (and its typed name) validates, `act` (returning
    the success message) and on to `done_url`; a domain error becomes the form's error."""
    if request.method == "POST" and form.is_valid():
        try:
            message = act(form.cleaned_data)
        except NotFound:
            raise
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, message)
            return redirect(done_url())
    page = {"team": request.team, "membership": request.membership, "form": form}
    return render(request, template, {**page, **(context or {})})


def _settings_url(request: TeamRequest) -> str:
    return reverse("teams:settings", kwargs={"team_slug": request.team.slug})


@require_http_methods(["GET", "POST"])
@team_view("team.transfer")
def team_transfer(request: TeamRequest) -> HttpResponse:
    team = request.team
    candidates = list(selectors.transfer_candidates(team, request.membership))
    form = TransferOwnershipForm(request.POST or None, team_name=team.name, candidates=candidates)

    def act(data: dict[str, Any]) -> str:
        owner = lifecycle.transfer_ownership(actor=request.membership, membership_id=data["member"])
        return (
            f"{owner.user.display_name} is now an Owner of {team.name}; you are an "
            f"{Role.ADMIN.label}."
        )

    return _confirmed(
        request,
        form,
        template="teams/team_transfer.html",
        act=act,
        done_url=lambda: reverse("teams:members", kwargs={"team_slug": team.slug}),
        context={"candidates": candidates},
    )


@require_http_methods(["GET", "POST"])
@team_view("team.archive")
def team_archive(request: TeamRequest) -> HttpResponse:
    team = request.team
    form = TeamNameConfirmationForm(request.POST or None, team_name=team.name)

    def act(data: dict[str, Any]) -> str:
        lifecycle.archive_team(actor=request.membership)
        return f"{team.name} is archived: everyone can still read it, nobody can change it."

    return _confirmed(
        request,
        form,
        template="teams/team_archive.html",
        act=act,
        done_url=lambda: reverse("teams:overview", kwargs={"team_slug": team.slug}),
    )


@require_POST
@team_view("team.unarchive")
def team_unarchive(request: TeamRequest) -> HttpResponse:
    team = request.team

    def act() -> str:
        lifecycle.unarchive_team(actor=request.membership)
        return f"{team.name} is active again: members can make changes."

    return act_then_redirect(request, act=act, done_url=_settings_url(request))


@require_http_methods(["GET", "POST"])
@team_view("team.delete")
def team_delete(request: TeamRequest) -> HttpResponse:
    team = request.team
    form = TeamNameConfirmationForm(request.POST or None, team_name=team.name)

    def act(data: dict[str, Any]) -> str:
        lifecycle.delete_team(actor=request.membership)
        return (
            f"{team.name} was deleted. Its characters are still on Convai, with the API keys "
            "that own them; its audit log is kept, sealed."
        )

    return _confirmed(
        request,
        form,
        template="teams/team_delete.html",
        act=act,
        done_url=lambda: reverse("teams:home"),
        context={"counts": selectors.deletion_counts(team)},
    )
