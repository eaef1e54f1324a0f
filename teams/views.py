"""Team pages: home, create and switch teams, overview, settings, members, invitations.

Thin by design: `team_view` authorizes through the policy, forms validate, `teams.services`
does the work and the audit; these functions only choose the page (or htmx fragment) and the
message. Domain errors become messages in one place (convai_admin.errors / htmx.confirm_or_act).
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
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import reauthentication_required
from accounts.models import User
from convai_admin.errors import DomainError, NotFound
from convai_admin.htmx import act_then_redirect, confirm_or_act
from convai_admin.http import AuthenticatedRequest

from . import errors, hooks, invitations, policy, selectors, services
from .decorators import CURRENT_TEAM_SESSION_KEY, team_view
from .forms import (
    InvitationForm,
    InvitationSignupForm,
    MemberRoleForm,
    TeamForm,
    TwoFactorRequirementForm,
)
from .http import TeamRequest
from .models import Invitation, Membership, Role

# --- Not tied to one team ------------------------------------------------------------------------


@login_required
def home(request: AuthenticatedRequest) -> HttpResponse:
    """Send the user to the team they last worked in, or to create their first team."""
    memberships = list(selectors.memberships_for(request.user))
    if not memberships:
        if not policy.may_create_team(request.user):
            return redirect("teams:team-list")
        return redirect("teams:team-create")
    last = request.session.get(CURRENT_TEAM_SESSION_KEY)
    chosen = next((m for m in memberships if m.team.slug == last), memberships[0])
    return redirect("teams:overview", team_slug=chosen.team.slug)


@login_required
@require_GET
def team_list(request: AuthenticatedRequest) -> HttpResponse:
    memberships = selectors.memberships_for(request.user)
    return render(request, "teams/team_list.html", {"memberships": memberships})


@login_required
@require_http_methods(["GET", "POST"])
def team_create(request: AuthenticatedRequest) -> HttpResponse:
    """Who may start a team is settings.TEAM_CREATION (policy.may_create_team); on a fresh
    install this is the first stop."""
    try:
        policy.authorize_team_creation(request.user)
    except policy.NotAllowed as error:
        raise PermissionDenied(error.message) from None
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = services.create_team(actor=request.user, name=form.cleaned_data["name"])
        messages.success(
            request,
            f"{team.name} is ready and you are its Owner. Invite your colleagues from Members.",
        )
        return redirect("teams:overview", team_slug=team.slug)
    first_team = not selectors.memberships_for(request.user).exists()
    return render(request, "teams/team_create.html", {"form": form, "first_team": first_team})


def _same_page_in(request: HttpRequest, membership: Membership) -> str | None:
    """The switcher keeps you on the same kind of page: from team A's Members to team B's
    Members. Only list pages without IDs carry over (an ID belongs to the old team), and only
    when the role in the other team may see that page."""
    referer = request.headers.get("Referer", "")
    if not referer:
        return None
    from urllib.parse import urlsplit

    path = urlsplit(referer).path
    try:
        match = resolve(path)
    except Resolver404:
        return None
    if set(match.kwargs) != {"team_slug"} or not match.view_name:
        return None
    action = getattr(match.func, "team_action", None)
    if action is None or not policy.may_attempt(membership, action):
        return None
    return reverse(match.view_name, kwargs={"team_slug": membership.team.slug})


@login_required
@require_GET
def team_switch(request: AuthenticatedRequest) -> HttpResponse:
    """`?team=<slug>` from the switcher: go there if you are a member (else it does not exist)."""
    slug = request.GET.get("team", "")
    if not slug:
        return redirect("teams:team-list")
    membership = selectors.membership_for(request.user, slug)
    if membership is None:
        raise NotFound("No such team.")
    return redirect(
        _same_page_in(request, membership)
        or reverse("teams:overview", kwargs={"team_slug": membership.team.slug})
    )


# --- One team -------------------------------------------------------------------------------------


@require_GET
@team_view("team.view")
def team_overview(request: TeamRequest) -> HttpResponse:
    """The page a studio opens every morning: what changed in Convai, jobs, recent activity,
    quotas, and the first-run checklist until it is done (what characters registers in
    teams.hooks: teams does not import it)."""
    membership = request.membership
    team = request.team
    member_count = selectors.team_member_count(team)
    pending_count = (
        selectors.pending_invitation_count(team)
        if request.can.view_invitations or request.can.invite
        else None
    )
    context = {
        "team": team,
        "membership": membership,
        "member_count": member_count,
        "pending_count": pending_count,
        **hooks.overview_sections(
            membership, request.can, members=member_count, pending=pending_count
        ),
        "abilities": policy.abilities(membership.role),
        "guidance": policy.role_guidance(membership.role),
        "leave": _leave_offer(request),
    }
    return render(request, "teams/team_overview.html", context)


def _leave_offer(request: TeamRequest) -> dict[str, Any]:
    """Whether "Leave team" is offered; the only Owner is told why not instead."""
    only_owner = policy.leaves_no_owner(
        request.membership.role, None, lambda: selectors.owner_count(request.team)
    )
    allowed = not only_owner and request.can.leave_team  # an archived team: nobody leaves
    return {"allowed": allowed, "only_owner": only_owner}


@require_http_methods(["GET", "POST"])
@team_view("team.settings")
def team_settings(request: TeamRequest) -> HttpResponse:
    team = request.team
    form = TeamForm(request.POST or None, initial={"name": team.name})
    if request.method == "POST" and form.is_valid():
        old = team.name
        services.rename_team(actor=request.membership, name=form.cleaned_data["name"])
        if team.name != old:
            messages.success(request, f"The team is now called {team.name}.")
        else:
            messages.info(request, "The name did not change.")
        return redirect("teams:settings", team_slug=team.slug)
    two_factor_form = TwoFactorRequirementForm(initial={"required": team.require_two_factor})
    return render(
        request,
        "teams/team_settings.html",
        {"team": team, "form": form, "two_factor_form": two_factor_form},
    )


@require_POST
@team_view("team.require_two_factor")
def team_two_factor(request: TeamRequest) -> HttpResponse:
    form = TwoFactorRequirementForm(request.POST)
    form.is_valid()  # a checkbox: absent means off
    required = bool(form.cleaned_data.get("required"))
    try:
        services.set_two_factor_requirement(actor=request.membership, required=required)
    except errors.TwoFactorNeededFirst as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            "Members must now use two-factor."
            if required
            else "Two-factor is no longer required of members.",
        )
    return redirect("teams:settings", team_slug=request.team.slug)


@require_http_methods(["GET", "POST"])
@team_view("team.leave")
def team_leave(request: TeamRequest) -> HttpResponse:
    team = request.team

    def act() -> str:
        services.leave_team(actor=request.membership)
        return f"You left {team.name}. To come back, ask one of its admins for a new invitation."

    context = {
        "team": team,
        "membership": request.membership,
        "leave": _leave_offer(request),
        "invitations_revoked": len(invitations.invitations_revoked_with(request.membership, None)),
        "characters_read_only": hooks.read_only_after_leaving(team, request.user),
        "also_stopping": hooks.warnings_after_leaving(team, request.user),
    }
    return confirm_or_act(
        request,
        template="teams/team_leave.html",
        context=context,
        act=act,
        done_url=reverse("teams:home"),
        failed_url=reverse("teams:overview", kwargs={"team_slug": team.slug}),
    )


# --- Members --------------------------------------------------------------------------------------


@require_GET
@team_view("member.view")
def team_members(request: TeamRequest) -> HttpResponse:
    """Everyone in the team, with the controls the viewer may use.

    Constant queries: the rows come from one select_related query plus the owner count; the
    controls are the policy's answers for each row, computed without the database."""
    actor = request.membership
    team = request.team
    members = list(selectors.team_members(team))
    owners = policy.count_owners(members)
    locked = selectors.locked_usernames([m.user for m in members])
    rows = []
    for member in members:
        controls = policy.member_controls(actor, member, owners=owners)
        rows.append(
            {
                "member": member,
                "is_you": member.pk == actor.pk,
                "role_form": (
                    MemberRoleForm(
                        offered=controls.offered,
                        initial={"role": member.role},
                        prefix=f"m{member.pk}",
                    )
                    if controls.change_role
                    else None
                ),
                "role_note": controls.note,
                "can_remove": controls.remove,
                "can_leave": controls.leave,
                "locked": member.user.username in locked,
                "can_unlock": member.user.username in locked and controls.unlock,
            }
        )
    context = {
        "team": team,
        "membership": actor,
        "rows": rows,
        "pending_count": (
            selectors.pending_invitation_count(team) if request.can.view_invitations else None
        ),
        "role_descriptions": policy.role_descriptions(),
    }
    return render(request, "teams/team_members.html", context)


@require_POST
@team_view("member.change_role")
@reauthentication_required
def member_role(request: TeamRequest, membership_id: int) -> HttpResponse:
    actor = request.membership
    team = request.team
    members_url = reverse("teams:members", kwargs={"team_slug": team.slug})
    form = MemberRoleForm(
        request.POST, offered=policy.assignable_roles(actor), prefix=f"m{membership_id}"
    )
    if not form.is_valid():
        messages.error(request, "Choose one of the roles in the list, then save again.")
        return redirect(members_url)

    def act() -> str:
        change = services.change_member_role(
            actor=actor, membership_id=membership_id, role=form.cleaned_data["role"]
        )
        member = change.member
        text = f"{member.user.display_name} is now {Role(member.role).label} in {team.name}."
        if change.invitations_revoked:
            text += (
                f" {change.invitations_revoked} pending invitation"
                f"{'s' if change.invitations_revoked != 1 else ''} they made above their new "
                "role stopped working."
            )
        return text

    return act_then_redirect(request, act=act, done_url=members_url)


@require_http_methods(["GET", "POST"])
@team_view("member.remove")
def member_remove(request: TeamRequest, membership_id: int) -> HttpResponse:
    actor = request.membership
    team = request.team
    member = selectors.team_member(team, membership_id)
    if member is None:
        raise NotFound("No such member.")

    def act() -> str:
        change = services.remove_member(actor=actor, membership_id=member.pk)
        text = f"{member.user.display_name} no longer has access to {team.name}."
        if change.invitations_revoked:
            text += (
                f" The {change.invitations_revoked} pending invitation"
                f"{'s' if change.invitations_revoked != 1 else ''} they made no longer "
                f"work{'s' if change.invitations_revoked == 1 else ''}."
            )
        return text

    context = {
        "team": team,
        "member": member,
        "allowed": policy.may(actor, "member.remove", member),
        "refusal": policy.refusal_message("member.remove", actor.role),
        "is_you": member.pk == actor.pk,
        "invitations_revoked": len(invitations.invitations_revoked_with(member, None)),
        "characters_read_only": hooks.read_only_after_leaving(team, member.user),
        "also_stopping": hooks.warnings_after_leaving(team, member.user),
    }
    members_url = reverse("teams:members", kwargs={"team_slug": team.slug})
    return confirm_or_act(
        request,
        template="teams/team_member_remove.html",
        context=context,
        act=act,
        done_url=members_url,
    )


@require_POST
@team_view("member.unlock")
def member_unlock(request: TeamRequest, membership_id: int) -> HttpResponse:
    member = services.unlock_member(actor=request.membership, membership_id=membership_id)
    messages.success(
        request,
        f"{member.user.display_name} can sign in again. If they forgot their password, an "
        "administrator of this server can set a new one.",
    )
    return redirect("teams:members", team_slug=request.team.slug)


# --- Invitations ----------------------------------------------------------------------------------


@require_GET
@team_view("invitation.view")
def team_invitations(request: TeamRequest) -> HttpResponse:
    team = request.team
    context = {
        "team": team,
        "pending": selectors.pending_invitations(team),
        "closed": selectors.closed_invitations(team),
    }
    return render(request, "teams/invitation_list.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@team_view("invitation.create")
def invitation_create(request: TeamRequest) -> HttpResponse:
    """On success the link is rendered straight into the response: the raw token is never
    stored anywhere, so this is the only time anyone sees it."""
    actor = request.membership
    team = request.team
    form = InvitationForm(
        request.POST or None, offered=policy.invitable_roles(actor), mail=settings.EMAIL_ENABLED
    )
    if request.method == "POST" and form.is_valid():
        try:
            created = invitations.create_invitation(
                actor=actor, role=form.cleaned_data["role"], email=form.cleaned_data["email"]
            )
        except DomainError as error:
            form.add_error("role", error.message)
        else:
            link = request.build_absolute_uri(
                reverse("teams:invitation-accept", kwargs={"token": created.token})
            )
            emailed = invitations.email_invitation(
                actor=actor, invitation=created.invitation, link=link
            )
            context = {
                "team": team,
                "invitation": created.invitation,
                "link": link,
                "emailed": emailed,
            }
            return render(request, "teams/invitation_created.html", context)
    context = {
        "team": team,
        "form": form,
        "mail": settings.EMAIL_ENABLED,
        "valid_days": settings.INVITATION_VALID_DAYS,
        "role_descriptions": policy.role_descriptions(),
    }
    return render(request, "teams/invitation_create.html", context)


@require_http_methods(["GET", "POST"])
@team_view("invitation.revoke")
def invitation_revoke(request: TeamRequest, invitation_id: int) -> HttpResponse:
    team = request.team
    invitation = selectors.team_invitation(team, invitation_id)
    if invitation is None:
        raise NotFound("No such invitation.")

    def act() -> str:
        invitations.revoke_invitation(actor=request.membership, invitation_id=invitation.pk)
        return "The invitation was revoked; its link no longer works."

    return confirm_or_act(
        request,
        template="teams/invitation_revoke.html",
        context={"team": team, "invitation": invitation},
        act=act,
        done_url=reverse("teams:invitations", kwargs={"team_slug": team.slug}),
    )


def _invalid_invitation(request: HttpRequest, error: DomainError) -> HttpResponse:
    reason = getattr(error, "reason", "unknown")
    status = 404 if reason == "unknown" else 410
    context = {"message": error.message, "reason": reason}
    return render(request, "teams/invitation_invalid.html", context, status=status)


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


INVITATION_TOKEN_SESSION_KEY = "invitation_token"


@never_cache
@_origin_only_referrer
@sensitive_post_parameters("password1", "password2")
@sensitive_variables()  # the sign-up form's cleaned data holds the new password
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The link from an invitation. Its first GET moves the token into the session and
    redirects to a token-free URL (as Django's PasswordResetConfirmView does), so the raw
    token appears in at most one access-log line and never in a Referer, a reload or the
    sign-in's `next`. A POST here (a form that kept the old address) is served in place."""
    request.session[INVITATION_TOKEN_SESSION_KEY] = token
    if request.method == "POST":
        return _invitation_page(request, token)
    return redirect("teams:invitation-join")


@never_cache
@_origin_only_referrer
@sensitive_post_parameters("password1", "password2")
@sensitive_variables()
@require_http_methods(["GET", "POST"])
def invitation_join(request: HttpRequest) -> HttpResponse:
    """The invitation whose token this browser's session holds (see invitation_accept)."""
    token = request.session.get(INVITATION_TOKEN_SESSION_KEY)
    if not token:
        return _invalid_invitation(
            request,
            errors.InvitationNotFound(
                "No invitation is open in this browser. Open the link from your invitation "
                "again (in this browser)."
            ),
        )
    return _invitation_page(request, str(token))


@sensitive_variables()
def _invitation_page(request: HttpRequest, token: str) -> HttpResponse:
    """Signed in: join with one click. Signed out: create an account here (the only way to
    sign up) or sign in and come back."""
    user = request.user if isinstance(request.user, User) else None
    try:
        invitation = invitations.find_invitation(token, visitor=user)
    except (errors.InvitationNotFound, errors.InvitationUnusable) as error:
        return _invalid_invitation(request, error)
    signup_form = None
    existing = None
    if user is not None:
        if request.method == "POST":
            return _join(request, user, invitation, token)
        existing = selectors.membership_for(user, invitation.team.slug)
    else:
        signup_form = InvitationSignupForm(
            request.POST or None, initial={"email": invitation.email}
        )
        if request.method == "POST" and signup_form.is_valid():
            joined = _sign_up_and_join(request, signup_form, invitation, token)
            if joined is not None:
                return joined
    team = invitation.team
    context = {
        "invitation": invitation,
        "team": team,
        "role_label": Role(invitation.role).label,
        "abilities": policy.abilities(invitation.role),
        "existing": existing,
        "form": signup_form,
        "login_url": f"{reverse('accounts:login')}?{urlencode({'next': request.path})}",
    }
    return render(request, "teams/invitation_accept.html", context)


def _join(request: HttpRequest, user: User, invitation: Invitation, token: str) -> HttpResponse:
    """A signed-in person accepts: join, or say why not."""
    team = invitation.team
    overview = reverse("teams:overview", kwargs={"team_slug": team.slug})
    try:
        invitations.accept_invitation(actor=user, token=token)
        request.session.pop(INVITATION_TOKEN_SESSION_KEY, None)
    except errors.AlreadyMember as error:
        messages.info(request, error.message)
        return redirect(overview)
    except (errors.InvitationNotFound, errors.InvitationUnusable) as error:
        return _invalid_invitation(request, error)
    messages.success(
        request, f"Welcome to {team.name}! You joined as {Role(invitation.role).label}."
    )
    return redirect(overview)


@sensitive_variables()  # the form's cleaned data holds the new password
def _sign_up_and_join(
    request: HttpRequest, form: InvitationSignupForm, invitation: Invitation, token: str
) -> HttpResponse | None:
    """A new account through the invitation, signed in; None when the form got an error."""
    data = form.cleaned_data
    try:
        membership = invitations.accept_invitation_with_new_account(
            token=token,
            username=data["username"],
            password=data["password1"],
            first_name=data.get("first_name", ""),
            last_name=data.get("last_name", ""),
            email=data.get("email", ""),
        )
    except errors.UsernameTaken as error:
        form.add_error("username", error.message)
        return None
    except (errors.InvitationNotFound, errors.InvitationUnusable) as error:
        return _invalid_invitation(request, error)
    login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.pop(INVITATION_TOKEN_SESSION_KEY, None)
    messages.success(
        request,
        f"Welcome to {invitation.team.name}, {membership.user.display_name}! Your account is "
        f"ready and you joined as {Role(membership.role).label}.",
    )
    return redirect("teams:overview", team_slug=invitation.team.slug)
