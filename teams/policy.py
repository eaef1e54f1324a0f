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
- Owner also manages Admins and Owners, invites Admins and renames the team. Nobody is invited
  as Owner: ownership is only granted by promoting someone who already joined, so a forwarded
  link can never hand over the team. A team keeps at least one Owner (enforced under a lock in
  the services; `Can` only stops offering what would be refused).

Refusals: `authorize` records one `denied` audit event and raises `NotAllowed`. It is called
exactly where the refusal happens (the decorator for the floor, the service for the rest), so a
refusal is audited once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from audit.models import Outcome
from audit.services import record
from convai_admin.errors import DomainError

from .models import Membership, Role

ROLE_ORDER: tuple[Role, ...] = (Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER)

# What each role adds to the one below it: shown on the overview, the invitation page and the
# Members page. Written once, here.
ROLE_DESCRIPTIONS: dict[Role, str] = {
    Role.VIEWER: "Reads everything in the team: characters, their history, members.",
    Role.EDITOR: "Also creates, edits, clones, imports, syncs and exports characters, and "
    "deletes the ones they created.",
    Role.ADMIN: "Also deletes and rebinds any character, invites people, manages Editors and "
    "Viewers, and reviews the audit log.",
    Role.OWNER: "Also manages Admins and Owners and renames the team. A team always keeps at "
    "least one Owner.",
}

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
    ),
    Role.OWNER: ("Manage Admins and Owners", "Rename the team"),
}

# The smallest role that may attempt each action. Actions with a target have a finer rule in
# `may` on top of this floor.
FLOOR: dict[str, Role] = {
    "team.view": Role.VIEWER,
    "team.leave": Role.VIEWER,
    "team.rename": Role.OWNER,
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
    return [(role, ROLE_DESCRIPTIONS[role]) for role in ROLE_ORDER]


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
            **(details or {}),
        },
    )
    raise NotAllowed(refusal_message(action, actor.role))


@dataclass(frozen=True)
class Can:
    """The answers a template needs, computed once per request from the acting membership.

    Attributes are team-wide answers; per-target answers (this member, this character) are
    computed by views with `may` and handed over with the rows."""

    membership: Membership

    def __getattr__(self, name: str) -> bool:
        # can.create_character -> may(m, "character.create"); only known actions resolve.
        action = _ANSWERS.get(name)
        if action is None:
            raise AttributeError(name)
        return may(self.membership, action)

    @cached_property
    def manage_members(self) -> bool:
        return may(self.membership, "member.remove")

    @cached_property
    def delete_any_character(self) -> bool:
        return at_least(self.membership, Role.ADMIN)


_ANSWERS: dict[str, str] = {
    "rename_team": "team.rename",
    "view_invitations": "invitation.view",
    "invite": "invitation.create",
    "unlock_members": "member.unlock",
    "create_character": "character.create",
    "edit_character": "character.update",
    "clone_character": "character.clone",
    "import_character": "character.import",
    "sync_character": "character.sync",
    "export_character": "character.export",
    "rebind_character": "character.rebind",
    "cancel_job": "job.cancel",
    "resume_job": "job.resume",
    "retry_job": "job.retry",
    "review_audit": "audit.review",
    "export_audit": "audit.export",
}
