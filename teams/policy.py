"""Who may do what in a team: the only code that knows the role order.

Every question is asked here — by the `team_view` decorator (the coarse floor of an action,
before a view runs), by services (the full rule, with its target, since a view is not the only
caller) and, through `Can`, by templates, which test answers and never roles.

The rules (design.md, Roles and sharing):
- Viewer reads everything in the team.
- Editor also creates, edits, clones, imports, syncs, restores, copies and exports characters,
  and deletes the characters they created themselves.
- Admin also deletes any character, rebinds characters, manages Editors and Viewers (role,
  removal, unlocking a locked-out sign-in), invites Editors and Viewers, revokes invitations,
  and reviews, verifies and exports the audit log.
- Owner also manages Admins and Owners, invites Admins, and renames, hands over (transfers
  ownership), archives and deletes the team. Nobody is invited as Owner: ownership is only
  granted by promoting or handing over to someone who already joined, so a forwarded link can
  never hand over the team. A team keeps at least one Owner (`leaves_no_owner`: the
  services ask it under a lock; `member_controls` and the leave offer only stop offering what
  would be refused).

An archived team is read-only: every action outside `ARCHIVED_ALLOWS` (reading, the audit
log, unarchiving and deleting) is refused whatever the role, with a message that says so.
Who may create a team at all is the install's `TEAM_CREATION` setting (`may_create_team`).

Refusals: `authorize` (the full rule) and `authorize_attempt` (the floor only) record one
`denied` audit event and raise `NotAllowed`. They are called exactly where the refusal happens
(the decorator for the floor, the service for the rest), so a refusal is audited once.

Words shown to people about roles are written here too: what each role may do
(`ROLE_ABILITIES`, from which `role_descriptions` is made), what it may not (`ROLE_LIMITS`),
refusals, and who sets roles (`role_guidance`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from django.conf import settings
from django.utils.safestring import mark_safe

from audit.models import Outcome
from audit.services import record
from convai_admin.errors import DomainError

from .models import Membership, Role

ROLE_ORDER: tuple[Role, ...] = (Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER)

# What each role adds to the one below it: the overview's "What you can do", the invitation
# page and, as one sentence per role (`role_descriptions`), the Members and invite pages.
# Written once, here.
ROLE_ABILITIES: dict[Role, tuple[str, ...]] = {
    Role.VIEWER: (
        "Browse the team's characters, their history and differences between versions",
        "See who is in the team",
    ),
    Role.EDITOR: (
        "Create, edit, clone, import and sync characters with your own API keys",
        "Delete the characters you created",
    ),
    Role.ADMIN: (
        "Delete any character and rebind characters to another member's key",
        "Invite people and manage Editors and Viewers",
        "Review and export the audit log",
        "Register, rotate and revoke the team's game builds",
    ),
    Role.OWNER: (
        "Manage Admins and Owners",
        "Rename, hand over, archive or delete the team",
        "Require two-factor of every member",
    ),
}

# What an archived team still allows: reading, the audit log, and its Owners' way back out of
# the archive (or on to deletion). Every other action is refused, whatever the role.
ARCHIVED_ALLOWS = frozenset(
    {
        "team.view",
        "team.settings",
        "member.view",
        "invitation.view",
        "character.view",
        "job.view",
        "build.view",
        "audit.review",
        "audit.export",
        "audit.verify",
        "team.unarchive",
        "team.delete",
    }
)

# The smallest role that may attempt each action. Actions with a target have a finer rule in
# `may` on top of this floor.
FLOOR: dict[str, Role] = {
    "team.view": Role.VIEWER,
    "team.leave": Role.VIEWER,
    "team.settings": Role.OWNER,
    "team.rename": Role.OWNER,
    "team.transfer": Role.OWNER,
    "team.archive": Role.OWNER,
    "team.unarchive": Role.OWNER,
    "team.delete": Role.OWNER,
    "team.require_two_factor": Role.OWNER,
    "member.view": Role.VIEWER,
    "member.change_role": Role.ADMIN,
    "member.remove": Role.ADMIN,
    "member.unlock": Role.ADMIN,
    "invitation.view": Role.ADMIN,
    "invitation.create": Role.ADMIN,
    "invitation.revoke": Role.ADMIN,
    "character.view": Role.VIEWER,
    "character.create": Role.EDITOR,
    "character.update": Role.EDITOR,
    "character.clone": Role.EDITOR,
    "character.import": Role.EDITOR,
    "character.sync": Role.EDITOR,
    "character.restore": Role.EDITOR,
    "character.copy": Role.EDITOR,
    "character.export": Role.EDITOR,
    "character.delete": Role.EDITOR,  # Admin+, or the Editor who created it (see `may`)
    "character.rebind": Role.ADMIN,
    "job.view": Role.VIEWER,
    # The job's starter, or Admin+ (see `may`); a resumed or retried job still runs as its
    # starter, with the starter's key.
    "job.cancel": Role.EDITOR,
    "job.resume": Role.EDITOR,
    "job.retry": Role.EDITOR,
    # Game builds (builds/): every member sees them (never a credential: those are shown
    # once, to the Admin who made them); Admins register, change, rotate and revoke them.
    "build.view": Role.VIEWER,
    "build.manage": Role.ADMIN,
    "audit.review": Role.ADMIN,
    "audit.export": Role.ADMIN,
    "audit.verify": Role.ADMIN,
}

# What a refused member is told, per action (the default names the role needed).
_REFUSALS: dict[str, str] = {
    "member.change_role": "Only an Owner can change the role of Admins and Owners, or make "
    "someone an Admin or Owner. Ask an Owner of this team.",
    "member.remove": "Only an Owner can remove Admins and Owners. Ask an Owner of this team.",
    "member.unlock": "Only an Owner can unlock Admins and Owners. Ask an Owner of this team.",
    "invitation.create": "Only an Owner can invite Admins, and Owners are made by promoting a "
    "member. Invite them with a smaller role, or ask an Owner.",
    "character.delete": "Editors can delete only the characters they created. Ask an Admin of "
    "this team to delete this one.",
    "job.cancel": "Only the member who started this job, or an Admin, can cancel it.",
    "job.resume": "Only the member who started this job, or an Admin, can resume it.",
    "job.retry": "Only the member who started this job, or an Admin, can retry its failed items.",
}


# What a refused member's own role allows, said first in a refusal below the action's floor, so
# a Viewer is told about Viewers (not about the rule an Editor meets).
ROLE_LIMITS: dict[Role, str] = {
    Role.VIEWER: "Viewers can read everything in the team but not change it.",
    Role.EDITOR: "Editors work on characters (and delete the ones they created) but do not "
    "manage the team, its members or the audit log.",
    Role.ADMIN: "Admins manage characters, Editors and Viewers and the audit log, but not "
    "Admins, Owners or the team itself.",
    Role.OWNER: "",
}


class NotAllowed(DomainError):
    """The member's role does not allow this operation (on this target)."""

    default_message = "Your role in this team does not allow that."


class _Created(Protocol):
    created_by_id: Any


def rank(role: str) -> int:
    return ROLE_ORDER.index(Role(role))


def at_least(membership: Membership, role: str) -> bool:
    return rank(membership.role) >= rank(role)


def floor(action: str) -> Role:
    """The smallest role that may attempt `action` (KeyError for an unknown action: a typo
    must fail loudly, not allow or refuse silently)."""
    return FLOOR[action]


def abilities(role: str) -> list[str]:
    """Everything `role` may do, the smaller roles' abilities first."""
    return [line for r in ROLE_ORDER[: rank(role) + 1] for line in ROLE_ABILITIES[r]]


def role_descriptions() -> list[tuple[Role, str]]:
    """One sentence per role, smallest first, from what it adds to the role below."""
    return [(role, _description(role)) for role in ROLE_ORDER]


def _description(role: Role) -> str:
    lines = ROLE_ABILITIES[role]
    if role == ROLE_ORDER[0]:
        return "; ".join(lines) + "."
    return "Also: " + "; ".join(line[0].lower() + line[1:] for line in lines) + "."


# Who sets roles, told on the overview under "What you can do": to a member who manages
# members, which roles they set; to the others, whom to ask for more.
_ROLE_SETTING: dict[Role, str] = {
    Role.VIEWER: "Your role is set by the team's Admins and Owners.",
    Role.EDITOR: "Your role is set by the team's Admins and Owners.",
    Role.ADMIN: "you set Editors' and Viewers' roles; Owners set Admins and Owners.",
    Role.OWNER: "as an Owner you set everyone's role, Admins and Owners included.",
}
_ASK_FOR_MORE: dict[Role, str] = {
    Role.VIEWER: "an admin",
    Role.EDITOR: "an admin",
    Role.ADMIN: "an Owner",
    Role.OWNER: "",  # nothing more to ask for
}


@dataclass(frozen=True)
class RoleGuidance:
    setting: str  # who sets roles, from the member's point of view
    ask: str  # whom to ask for a bigger role ("" for an Owner)


def role_guidance(role: str) -> RoleGuidance:
    # Literals of this module, so safe as they are (the apostrophes stay apostrophes).
    return RoleGuidance(
        setting=mark_safe(_ROLE_SETTING[Role(role)]),  # noqa: S308
        ask=_ASK_FOR_MORE[Role(role)],
    )


def assignable_roles(actor: Membership) -> list[Role]:
    """Roles the actor may give to a member they manage (highest first)."""
    if actor.role == Role.OWNER:
        return [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER]
    if actor.role == Role.ADMIN:
        return [Role.EDITOR, Role.VIEWER]
    return []


def invitable_roles(actor: Membership) -> list[Role]:
    """Roles the actor may invite someone as. Never Owner (see the module docstring)."""
    return [role for role in assignable_roles(actor) if role != Role.OWNER]


def manages(actor: Membership, target: Membership) -> bool:
    """Owners manage everyone; Admins manage Editors and Viewers; nobody manages themselves
    through these forms (they leave, or ask another Owner)."""
    if actor.pk == target.pk:
        return False
    if actor.role == Role.OWNER:
        return True
    if actor.role == Role.ADMIN:
        return rank(target.role) < rank(Role.ADMIN)
    return False


def count_owners(members: Iterable[Membership]) -> int:
    """The Owners among `members` (already loaded: no query)."""
    return sum(1 for member in members if member.role == Role.OWNER)


def leaves_no_owner(role: str, new_role: str | None, owners: int | Callable[[], int]) -> bool:
    """The last-Owner rule: a team keeps at least one Owner. Whether a member with `role`
    becoming `new_role` (None: leaving or removed) would leave the team without one, given
    `owners`, the number of Owners now (or a function counting them, called only when it
    matters: the services count under a lock)."""
    if role != Role.OWNER or new_role == Role.OWNER:
        return False
    return (owners() if callable(owners) else owners) <= 1


@dataclass(frozen=True)
class MemberControls:
    """What the acting member may do to one member on the Members page."""

    offered: list[Role]  # the roles in the role menu (the current one included)
    change_role: bool  # show the role menu
    remove: bool
    unlock: bool  # may lift a lockout (the page shows it only for a locked member)
    leave: bool  # the row is the actor's own and they may leave
    note: str  # why the role cannot be changed here, where no menu is shown


def member_controls(actor: Membership, member: Membership, *, owners: int) -> MemberControls:
    """The Members page's controls for `member`, without the database (`owners`: the team's
    Owner count). The only Owner is not offered a demotion or a leave that would be refused."""
    own = member.pk == actor.pk
    offered = [
        role for role in assignable_roles(actor) if not leaves_no_owner(member.role, role, owners)
    ]
    only_owner = leaves_no_owner(member.role, None, owners)
    if own and only_owner:
        note = "Only Owner"
    elif own:
        note = "Ask an Owner"
    else:
        note = "Owners only"
    return MemberControls(
        offered=offered,
        change_role=may(actor, "member.change_role", member) and len(offered) > 1,
        remove=may(actor, "member.remove", member),
        unlock=may(actor, "member.unlock", member),
        leave=own and not only_owner and may(actor, "team.leave"),
        note=note,
    )


def may(
    actor: Membership | None,
    action: str,
    target: Any = None,
    *,
    role: str | None = None,
) -> bool:
    """Whether `actor` may do `action` (to `target`, giving `role` where that matters)."""
    if actor is None or not at_least(actor, floor(action)):
        return False
    if frozen_by_archive(actor, action):
        return False
    if action in {"member.remove", "member.unlock"} and target is not None:
        return manages(actor, target)
    if action == "member.change_role":
        if role is not None and Role(role) not in assignable_roles(actor):
            return False
        if target is None:
            return True
        # An Owner may step down themselves (while another Owner remains: the service's rule).
        return manages(actor, target) or (target.pk == actor.pk and actor.role == Role.OWNER)
    if action == "invitation.create" and role is not None:
        return Role(role) in invitable_roles(actor)
    if action == "character.delete":
        if at_least(actor, Role.ADMIN):
            return True
        return target is not None and _created_by(target, actor)
    if action in {"job.cancel", "job.resume", "job.retry"}:
        # Team-wide (no job named): whether the member may act on some job (their own).
        return at_least(actor, Role.ADMIN) or target is None or _created_by(target, actor)
    return True


def _created_by(target: _Created, actor: Membership) -> bool:
    return target.created_by_id is not None and target.created_by_id == actor.user_id


def refusal_message(action: str, role: str | None = None) -> str:
    """What a refused member is told: below the action's floor, what their own `role` allows
    and the role needed; at or above it, the action's finer rule (_REFUSALS)."""
    needed = floor(action)
    below = role is not None and rank(role) < rank(needed)
    if action in _REFUSALS and not below:
        return _REFUSALS[action]
    needs = f"This needs the {needed.label} role or higher in this team."
    limit = ROLE_LIMITS[Role(role)] if below and role is not None else ""
    return f"{limit} {needs}" if limit else needs


def may_attempt(actor: Membership, action: str) -> bool:
    """Whether the member's role reaches the floor of `action` (and the team is not archived,
    for a change): the coarse check made before the target is known (by `team_view`, and to
    offer a page in the team switcher)."""
    return at_least(actor, floor(action)) and not frozen_by_archive(actor, action)


def frozen_by_archive(actor: Membership, action: str) -> bool:
    """Whether `action` is refused because the actor's team is archived (read-only)."""
    if action in ARCHIVED_ALLOWS or actor.team_id is None:
        return False
    return actor.team.archived_at is not None


def archived_refusal(team_name: str) -> str:
    return (
        f"{team_name} is archived, so nothing in it can be changed. An Owner can unarchive it "
        "from the team's Settings."
    )


def may_create_team(user: Any) -> bool:
    """TEAM_CREATION: "anyone" signed in, or "admins" — the install's staff and superusers."""
    if not getattr(user, "is_authenticated", False):
        return False
    if settings.TEAM_CREATION == "anyone":
        return True
    return bool(user.is_staff or user.is_superuser)


TEAM_CREATION_REFUSAL = (
    "On this server only its administrators create teams. Ask one of them for a team, or ask "
    "a team's admin for an invitation."
)


def authorize_team_creation(user: Any) -> None:
    """Raise NotAllowed, after recording one denied `team.created` (outside any team), unless
    `may_create_team`."""
    if may_create_team(user):
        return
    record(
        "team.created",
        actor=user,
        target_type="team",
        outcome=Outcome.DENIED,
        details={"team_creation": settings.TEAM_CREATION},
    )
    raise NotAllowed(TEAM_CREATION_REFUSAL)


def authorize_attempt(actor: Membership, action: str, **audit: Any) -> None:
    """`authorize` for the floor only (see `may_attempt`); `audit`: authorize's target_* and
    details of the denied event."""
    if may_attempt(actor, action):
        return
    _refuse(actor, action, **audit)


def authorize(
    actor: Membership,
    action: str,
    target: Any = None,
    *,
    role: str | None = None,
    target_type: str = "",
    target_id: object = "",
    target_label: str = "",
    details: dict[str, object] | None = None,
    event: str | None = None,
) -> None:
    """Raise NotAllowed (after recording one `denied` event, named `event` or the action)
    unless `may` says yes."""
    if may(actor, action, target, role=role):
        return
    _refuse(
        actor,
        action,
        role=role,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        details=details,
        event=event,
    )


def _refuse(
    actor: Membership,
    action: str,
    *,
    role: str | None = None,
    target_type: str = "",
    target_id: object = "",
    target_label: str = "",
    details: dict[str, object] | None = None,
    event: str | None = None,
) -> None:
    archived = frozen_by_archive(actor, action)
    record(
        event or action,
        actor=actor.user,
        team=actor.team,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        outcome=Outcome.DENIED,
        details={
            "role": actor.role,
            "required": floor(action).value,
            **({"requested_role": Role(role).value} if role else {}),
            **({"archived": True} if archived else {}),
            **(details or {}),
        },
    )
    if archived and at_least(actor, floor(action)):
        raise NotAllowed(archived_refusal(actor.team.name))
    raise NotAllowed(refusal_message(action, actor.role))


class UnknownAnswer(Exception):
    """A template asked `Can` for an answer it does not have (a typo). Not an AttributeError,
    which Django templates swallow into "no": with CONVAI_ADMIN_STRICT_PERMISSIONS (tests,
    DEBUG) the page fails instead."""


@dataclass(frozen=True)
class Can:
    """The answers a template needs, computed once per request from the acting membership.

    Every answer is a property named here; per-target answers (this member, this character) are
    computed by views with `may` (or `member_controls`) and handed over with the rows."""

    membership: Membership

    def _may(self, action: str) -> bool:
        return may(self.membership, action)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not properties below: a typo, or a probe such as
        # copy's __deepcopy__ (which must stay an AttributeError).
        if not name.startswith("_") and settings.CONVAI_ADMIN_STRICT_PERMISSIONS:
            raise UnknownAnswer(f"teams.policy.Can has no answer named {name!r}.")
        raise AttributeError(name)

    @cached_property
    def manage_members(self) -> bool:
        return self._may("member.remove")

    @cached_property
    def rename_team(self) -> bool:
        return self._may("team.rename")

    @cached_property
    def transfer_team(self) -> bool:
        return self._may("team.transfer")

    @cached_property
    def archive_team(self) -> bool:
        return self._may("team.archive")

    @cached_property
    def unarchive_team(self) -> bool:
        return self._may("team.unarchive")

    @cached_property
    def delete_team(self) -> bool:
        return self._may("team.delete")

    @cached_property
    def leave_team(self) -> bool:
        return self._may("team.leave")

    @cached_property
    def require_two_factor(self) -> bool:
        return self._may("team.require_two_factor")

    @cached_property
    def view_invitations(self) -> bool:
        return self._may("invitation.view")

    @cached_property
    def invite(self) -> bool:
        return self._may("invitation.create")

    @cached_property
    def unlock_members(self) -> bool:
        return self._may("member.unlock")

    @cached_property
    def create_character(self) -> bool:
        return self._may("character.create")

    @cached_property
    def edit_character(self) -> bool:
        return self._may("character.update")

    @cached_property
    def clone_character(self) -> bool:
        return self._may("character.clone")

    @cached_property
    def import_character(self) -> bool:
        return self._may("character.import")

    @cached_property
    def sync_character(self) -> bool:
        return self._may("character.sync")

    @cached_property
    def export_character(self) -> bool:
        return self._may("character.export")

    @cached_property
    def rebind_character(self) -> bool:
        return self._may("character.rebind")

    @cached_property
    def delete_any_character(self) -> bool:
        return self._may("character.delete")

    @cached_property
    def cancel_job(self) -> bool:
        return self._may("job.cancel")

    @cached_property
    def resume_job(self) -> bool:
        return self._may("job.resume")

    @cached_property
    def retry_job(self) -> bool:
        return self._may("job.retry")

    @cached_property
    def manage_builds(self) -> bool:
        return self._may("build.manage")

    @cached_property
    def review_audit(self) -> bool:
        return self._may("audit.review")

    @cached_property
    def export_audit(self) -> bool:
        return self._may("audit.export")

    @cached_property
    def verify_audit(self) -> bool:
        return self._may("audit.verify")


def two_factor_missing(membership: Membership, *, has_two_factor: Callable[[], bool]) -> bool:
    """The team requires two-factor and this member has none: they see only the page asking
    them to set it up. `has_two_factor` is asked only when the team requires it (a query)."""
    return membership.team.require_two_factor and not has_two_factor()
