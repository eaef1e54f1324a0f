"""Team pages: create and switch teams, overview, settings, members, invitations.

Thin by design: `team_view` authorizes, forms validate, `accounts.services` does the work and
the audit; these functions only choose the page (or htmx fragment) and the message.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from convai_admin.htmx import render_page

from . import selectors, services
from .models import Membership, Role, Team, User
from .permissions import team_view
from .team_forms import InvitationForm, InvitationSignupForm, MemberRoleForm, TeamForm

# What each role adds, shown on the overview so people know what they can do here.
ROLE_ABILITIES: dict[str, list[str]] = {
    Role.VIEWER: [
        "Browse the team's characters, their history and differences between versions",
        "See who is in the team",
    ],
    Role.EDITOR: ["Create, edit, clone, import and sync characters with your own API keys"],
    Role.ADMIN: [
        "Delete characters and rebind them to another member's key",
        "Invite people and manage Editors and Viewers",
        "Review and export the audit log",
    ],
    Role.OWNER: ["Manage Admins and Owners", "Rename the team"],
}
ROLE_ORDER = [Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER]


def _membership(request: HttpRequest) -> Membership:
    return request.membership  # type: ignore[attr-defined]


def _team(request: HttpRequest) -> Team:
    return request.team  # type: ignore[attr-defined]


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _abilities(role: str) -> list[str]:
    rank = ROLE_ORDER.index(Role(role))
    return [line for r in ROLE_ORDER[: rank + 1] for line in ROLE_ABILITIES[r]]


# --- Teams not tied to the current one ------------------------------------------------------------


@login_required
@require_GET
def team_list(request: HttpRequest) -> HttpResponse:
    memberships = selectors.memberships_for(_user(request))
    return render(request, "accounts/team_list.html", {"memberships": memberships})


@login_required
@require_http_methods(["GET", "POST"])
def team_create(request: HttpRequest) -> HttpResponse:
    """Any signed-in person may start a team; on a fresh install this is the first stop."""
    user = _user(request)
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = services.create_team(user, form.cleaned_data["name"], request=request)
        messages.success(
            request,
            f"{team.name} is ready and you are its Owner. Invite your colleagues from Members.",
        )
        return redirect("team_overview", team_slug=team.slug)
    first_team = not selectors.memberships_for(user).exists()
    return render(request, "accounts/team_create.html", {"form": form, "first_team": first_team})


@login_required
@require_GET
def team_switch(request: HttpRequest) -> HttpResponse:
    """`?team=<slug>` from the switcher: go there if you are a member (else it does not exist)."""
    slug = request.GET.get("team", "")
    if not slug:
        return redirect("team_list")
    membership = selectors.membership_for(_user(request), slug)
    if membership is None:
        raise Http404("No such team.")
    return redirect("team_overview", team_slug=membership.team.slug)


# --- One team -------------------------------------------------------------------------------------


@require_GET
@team_view(Role.VIEWER)
def team_overview(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    team = _team(request)
    is_admin = membership.has_role(Role.ADMIN)
    context = {
        "team": team,
        "membership": membership,
        "member_count": selectors.team_member_count(team),
        "pending_count": selectors.pending_invitation_count(team) if is_admin else None,
        "abilities": _abilities(membership.role),
        "is_admin": is_admin,
        "is_owner": membership.role == Role.OWNER,
        # Editors and up act on characters through their own key: nudge them to add one.
        "show_api_key_prompt": membership.has_role(Role.EDITOR)
        and not selectors.api_keys_for(membership.user).exists(),
    }
    return render(request, "accounts/team_overview.html", context)


@require_http_methods(["GET", "POST"])
@team_view(Role.OWNER)
def team_settings(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    team = _team(request)
    form = TeamForm(request.POST or None, instance=Team(name=team.name))
    if request.method == "POST" and form.is_valid():
        old = team.name
        services.rename_team(membership, form.cleaned_data["name"], request=request)
        if team.name != old:
            messages.success(request, f"The team is now called {team.name}.")
        else:
            messages.info(request, "The name did not change.")
        return redirect("team_settings", team_slug=team.slug)
    return render(request, "accounts/team_settings.html", {"team": team, "form": form})


@require_http_methods(["GET", "POST"])
@team_view(Role.VIEWER)
def team_leave(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    team = _team(request)
    if request.method == "POST":
        try:
            services.leave_team(membership, request=request)
        except services.TeamError as error:
            messages.error(request, error.message)
            return redirect("team_overview", team_slug=team.slug)
        messages.success(
            request,
            f"You left {team.name}. To come back, ask one of its admins for a new invitation.",
        )
        return redirect("home")
    context = {"team": team, "membership": membership}
    return render_page(request, "accounts/team_leave.html", context, partial="confirm")


# --- Members --------------------------------------------------------------------------------------


@require_GET
@team_view(Role.VIEWER)
def team_members(request: HttpRequest) -> HttpResponse:
    """Everyone in the team, with role controls where the viewer may use them.

    Constant queries: the rows come from one select_related query; the controls are computed
    from the acting membership without touching the database."""
    actor = _membership(request)
    team = _team(request)
    offered = services.assignable_roles(actor)
    rows = []
    for member in selectors.team_members(team):
        manageable = services.can_manage(actor, member)
        own = member.pk == actor.pk
        can_change = manageable or (own and services.can_change_own_role(actor))
        rows.append(
            {
                "member": member,
                "is_you": own,
                "role_form": (
                    MemberRoleForm(
                        offered=offered,
                        initial={"role": member.role},
                        prefix=f"m{member.pk}",
                    )
                    if can_change
                    else None
                ),
                "can_remove": manageable,
            }
        )
    is_admin = actor.has_role(Role.ADMIN)
    context = {
        "team": team,
        "membership": actor,
        "rows": rows,
        "is_admin": is_admin,
        "pending_count": selectors.pending_invitation_count(team) if is_admin else None,
    }
    return render(request, "accounts/team_members.html", context)


@require_POST
@team_view(Role.ADMIN)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    actor = _membership(request)
    team = _team(request)
    form = MemberRoleForm(
        request.POST, offered=services.assignable_roles(actor), prefix=f"m{membership_id}"
    )
    if not form.is_valid():
        messages.error(request, "Choose one of the roles in the list, then save again.")
        return redirect("team_members", team_slug=team.slug)
    try:
        member = services.change_member_role(
            actor, membership_id, form.cleaned_data["role"], request=request
        )
    except services.MemberNotFound:
        raise Http404("No such member.") from None
    except services.TeamError as error:
        messages.error(request, error.message)
        return redirect("team_members", team_slug=team.slug)
    messages.success(
        request, f"{member.user.display_name} is now {Role(member.role).label} in {team.name}."
    )
    return redirect("team_members", team_slug=team.slug)


@require_http_methods(["GET", "POST"])
@team_view(Role.ADMIN)
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    actor = _membership(request)
    team = _team(request)
    member = selectors.team_member(team, membership_id)
    if member is None:
        raise Http404("No such member.")
    if request.method == "POST":
        try:
            services.remove_member(actor, member.pk, request=request)
        except services.MemberNotFound:
            raise Http404("No such member.") from None
        except services.TeamError as error:
            messages.error(request, error.message)
            return redirect("team_members", team_slug=team.slug)
        messages.success(
            request,
            f"{member.user.display_name} no longer has access to {team.name}. "
            "Characters bound to their API keys need rebinding by an admin.",
        )
        return redirect("team_members", team_slug=team.slug)
    context = {
        "team": team,
        "member": member,
        "allowed": services.can_manage(actor, member),
        "is_you": member.pk == actor.pk,
    }
    return render_page(request, "accounts/team_member_remove.html", context, partial="confirm")


# --- Invitations ----------------------------------------------------------------------------------


@require_GET
@team_view(Role.ADMIN)
def team_invitations(request: HttpRequest) -> HttpResponse:
    team = _team(request)
    context = {
        "team": team,
        "pending": selectors.pending_invitations(team),
        "closed": selectors.closed_invitations(team),
    }
    return render(request, "accounts/invitation_list.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@team_view(Role.ADMIN)
def invitation_create(request: HttpRequest) -> HttpResponse:
    """On success the link is rendered straight into the response: the raw token is never
    stored anywhere, so this is the only time anyone sees it."""
    actor = _membership(request)
    team = _team(request)
    form = InvitationForm(request.POST or None, offered=services.invitable_roles(actor))
    if request.method == "POST" and form.is_valid():
        try:
            created = services.create_invitation(
                actor, form.cleaned_data["role"], form.cleaned_data["email"], request=request
            )
        except services.TeamError as error:
            form.add_error("role", error.message)
        else:
            link = request.build_absolute_uri(
                reverse("invitation_accept", kwargs={"token": created.token})
            )
            context = {"team": team, "invitation": created.invitation, "link": link}
            return render(request, "accounts/invitation_created.html", context)
    context = {"team": team, "form": form, "valid_days": settings.INVITATION_VALID_DAYS}
    return render(request, "accounts/invitation_create.html", context)


@require_http_methods(["GET", "POST"])
@team_view(Role.ADMIN)
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    actor = _membership(request)
    team = _team(request)
    invitation = selectors.team_invitation(team, invitation_id)
    if invitation is None:
        raise Http404("No such invitation.")
    if request.method == "POST":
        try:
            services.revoke_invitation(actor, invitation.pk, request=request)
        except services.InvitationNotFound:
            raise Http404("No such invitation.") from None
        except services.TeamError as error:
            messages.error(request, error.message)
            return redirect("team_invitations", team_slug=team.slug)
        messages.success(request, "The invitation was revoked; its link no longer works.")
        return redirect("team_invitations", team_slug=team.slug)
    context = {"team": team, "invitation": invitation}
    return render_page(request, "accounts/invitation_revoke.html", context, partial="confirm")


def _invalid_invitation(request: HttpRequest, error: services.TeamError) -> HttpResponse:
    reason = getattr(error, "reason", "unknown")
    status = 404 if reason == "unknown" else 410
    context = {"message": error.message, "reason": reason}
    return render(request, "accounts/invitation_invalid.html", context, status=status)


def _origin_only_referrer(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The invitation token is in the URL: browsers must not send it on (e.g. into a web
    server's access log) as the Referer of the stylesheet or the sign-in link. Only the origin
    goes: "no-referrer" would also make the browser send `Origin: null` with the sign-up form,
    which Django's CSRF check rightly refuses."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = "strict-origin"
        return response

    return wrapper


@never_cache
@_origin_only_referrer
@sensitive_post_parameters("password1", "password2")
@sensitive_variables()  # the sign-up form's cleaned data holds the new password
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The link from an invitation. Signed in: join with one click. Signed out: create an
    account here (the only way to sign up) or sign in and come back."""
    try:
        invitation = services.find_invitation(token)
    except services.TeamError as error:
        return _invalid_invitation(request, error)
    team = invitation.team
    user = request.user
    signup_form = None
    if user.is_authenticated:
        if request.method == "POST":
            try:
                services.accept_invitation(token, user, request=request)
            except services.AlreadyMember as error:
                messages.info(request, error.message)
                return redirect("team_overview", team_slug=team.slug)
            except services.TeamError as error:
                return _invalid_invitation(request, error)
            messages.success(
                request,
                f"Welcome to {team.name}! You joined as {Role(invitation.role).label}.",
            )
            return redirect("team_overview", team_slug=team.slug)
        existing = selectors.membership_for(user, team.slug)
    else:
        existing = None
        signup_form = InvitationSignupForm(
            request.POST or None, initial={"email": invitation.email}
        )
        if request.method == "POST" and signup_form.is_valid():
            data = signup_form.cleaned_data
            try:
                membership = services.accept_invitation_with_new_account(
                    token,
                    username=data["username"],
                    password=data["password1"],
                    first_name=data.get("first_name", ""),
                    last_name=data.get("last_name", ""),
                    email=data.get("email", ""),
                    request=request,
                )
            except services.UsernameTaken as error:
                signup_form.add_error("username", error.message)
            except services.TeamError as error:
                return _invalid_invitation(request, error)
            else:
                login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(
                    request,
                    f"Welcome to {team.name}, {membership.user.display_name}! Your account is "
                    f"ready and you joined as {Role(membership.role).label}.",
                )
                return redirect("team_overview", team_slug=team.slug)
    context = {
        "invitation": invitation,
        "team": team,
        "role_label": Role(invitation.role).label,
        "abilities": _abilities(invitation.role),
        "existing": existing,
        "form": signup_form,
        "login_url": f"{reverse('login')}?{urlencode({'next': request.path})}",
    }
    return render(request, "accounts/invitation_accept.html", context)
