"""teams.policy, the only code that knows who may do what: every action against every role, the
rules that depend on a target, and the per-request answers templates test.

The expected answers are written out here from design.md (Roles and sharing), not computed
from the policy's own tables: a change to the policy must change this table too."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

import pytest

from teams import policy
from teams.models import Membership, Role

ROLES = (Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER)

# The smallest role that may attempt each action (design.md, Roles and sharing).
SMALLEST_ROLE: dict[str, Role] = {
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
    # Without a target: any character, which only Admins and Owners may delete (an Editor may
    # delete the ones they created: see the target rules below).
    "character.delete": Role.ADMIN,
    "character.rebind": Role.ADMIN,
    "job.view": Role.VIEWER,
    "job.cancel": Role.EDITOR,
    "job.resume": Role.EDITOR,
    "job.retry": Role.EDITOR,
    "audit.review": Role.ADMIN,
    "audit.export": Role.ADMIN,
    "audit.verify": Role.ADMIN,
}

_ids = count(1)


def member(role: Role, *, user_id: int | None = None) -> Membership:
    """An unsaved membership: the policy answers without the database."""
    pk = next(_ids)
    return Membership(pk=pk, role=role, user_id=user_id or pk, team_id=1)


@dataclass
class Thing:
    """Anything with a creator, e.g. a character."""

    created_by_id: int | None


def test_the_table_covers_every_action_of_the_policy() -> None:
    assert set(SMALLEST_ROLE) == set(policy.FLOOR)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(SMALLEST_ROLE))
def test_may_for_every_action_and_role(action: str, role: Role) -> None:
    allowed = ROLES.index(role) >= ROLES.index(SMALLEST_ROLE[action])
    assert policy.may(member(role), action) is allowed


@pytest.mark.parametrize("action", sorted(SMALLEST_ROLE))
def test_nobody_may_anything_without_a_membership(action: str) -> None:
    assert policy.may(None, action) is False


def test_an_unknown_action_raises_instead_of_answering() -> None:
    with pytest.raises(KeyError):
        policy.may(member(Role.OWNER), "character.destroy")
    with pytest.raises(KeyError):
        policy.floor("team.delete")
    with pytest.raises(KeyError):
        policy.refusal_message("nothing.here")


# --- Managing members: `manages` ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor_role", "target_role", "managed"),
    [
        (Role.OWNER, Role.OWNER, True),
        (Role.OWNER, Role.ADMIN, True),
        (Role.OWNER, Role.EDITOR, True),
        (Role.OWNER, Role.VIEWER, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.ADMIN, Role.ADMIN, False),
        (Role.ADMIN, Role.EDITOR, True),
        (Role.ADMIN, Role.VIEWER, True),
        (Role.EDITOR, Role.EDITOR, False),
        (Role.EDITOR, Role.VIEWER, False),
        (Role.VIEWER, Role.VIEWER, False),
    ],
)
def test_member_actions_on_a_target_follow_manages(
    actor_role: Role, target_role: Role, managed: bool
) -> None:
    actor, target = member(actor_role), member(target_role)
    assert policy.manages(actor, target) is managed
    assert policy.may(actor, "member.remove", target) is managed
    assert policy.may(actor, "member.unlock", target) is managed
    assert policy.may(actor, "member.change_role", target) is managed


@pytest.mark.parametrize("role", ROLES)
def test_nobody_manages_themselves(role: Role) -> None:
    actor = member(role)
    assert policy.manages(actor, actor) is False
    assert policy.may(actor, "member.remove", actor) is False
    assert policy.may(actor, "member.unlock", actor) is False


def test_only_an_owner_may_change_their_own_role() -> None:
    """Stepping down is allowed by the policy; keeping one Owner is the service's rule."""
    owner, admin = member(Role.OWNER), member(Role.ADMIN)
    assert policy.may(owner, "member.change_role", owner, role=Role.ADMIN) is True
    assert policy.may(admin, "member.change_role", admin, role=Role.EDITOR) is False


@pytest.mark.parametrize(
    ("actor_role", "new_role", "allowed"),
    [
        (Role.OWNER, Role.OWNER, True),
        (Role.OWNER, Role.ADMIN, True),
        (Role.OWNER, Role.EDITOR, True),
        (Role.OWNER, Role.VIEWER, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.ADMIN, Role.ADMIN, False),
        (Role.ADMIN, Role.EDITOR, True),
        (Role.ADMIN, Role.VIEWER, True),
    ],
)
def test_which_roles_a_manager_may_give(actor_role: Role, new_role: Role, allowed: bool) -> None:
    actor, target = member(actor_role), member(Role.VIEWER)
    assert policy.may(actor, "member.change_role", target, role=new_role) is allowed
    assert (new_role in policy.assignable_roles(actor)) is allowed


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
def test_editors_and_viewers_give_no_roles(role: Role) -> None:
    assert policy.assignable_roles(member(role)) == []
    assert policy.invitable_roles(member(role)) == []


# --- Invitations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor_role", "invited_role", "allowed"),
    [
        (Role.OWNER, Role.OWNER, False),  # ownership is only granted by promotion
        (Role.OWNER, Role.ADMIN, True),
        (Role.OWNER, Role.EDITOR, True),
        (Role.OWNER, Role.VIEWER, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.ADMIN, Role.ADMIN, False),
        (Role.ADMIN, Role.EDITOR, True),
        (Role.ADMIN, Role.VIEWER, True),
        (Role.EDITOR, Role.VIEWER, False),
        (Role.VIEWER, Role.VIEWER, False),
    ],
)
def test_who_may_invite_as_which_role(actor_role: Role, invited_role: Role, allowed: bool) -> None:
    actor = member(actor_role)
    assert policy.may(actor, "invitation.create", role=invited_role) is allowed
    assert (invited_role in policy.invitable_roles(actor)) is allowed


# --- Deleting a character: Admin+, or the Editor who created it -----------------------------------


@pytest.mark.parametrize(
    ("role", "own", "allowed"),
    [
        (Role.OWNER, False, True),
        (Role.ADMIN, False, True),
        (Role.EDITOR, True, True),
        (Role.EDITOR, False, False),
        (Role.VIEWER, True, False),
        (Role.VIEWER, False, False),
    ],
)
def test_character_delete(role: Role, own: bool, allowed: bool) -> None:
    actor = member(role, user_id=500)
    character = Thing(created_by_id=500 if own else 501)
    assert policy.may(actor, "character.delete", character) is allowed


def test_a_character_whose_creator_is_gone_is_deleted_by_admins_only() -> None:
    orphan = Thing(created_by_id=None)
    assert policy.may(member(Role.EDITOR), "character.delete", orphan) is False
    assert policy.may(member(Role.ADMIN), "character.delete", orphan) is True


# --- Cancelling, resuming, retrying a job: its starter, or Admin+ ---------------------------------


@pytest.mark.parametrize("action", ["job.cancel", "job.resume", "job.retry"])
@pytest.mark.parametrize(
    ("role", "own", "allowed"),
    [
        (Role.OWNER, False, True),
        (Role.ADMIN, False, True),
        (Role.EDITOR, True, True),
        (Role.EDITOR, False, False),
        (Role.VIEWER, True, False),
    ],
)
def test_a_job_is_cancelled_resumed_retried_by_its_starter_or_admins(
    action: str, role: Role, own: bool, allowed: bool
) -> None:
    actor = member(role, user_id=600)
    job = Thing(created_by_id=600 if own else 601)
    assert policy.may(actor, action, job) is allowed
    # A job whose starter's account is gone: Admins only.
    admin = role in (Role.ADMIN, Role.OWNER)
    assert policy.may(actor, action, Thing(created_by_id=None)) is admin


# --- Can: what templates test ---------------------------------------------------------------------


CAN = {
    # answer: (viewer, editor, admin, owner)
    "manage_members": (False, False, True, True),
    "rename_team": (False, False, False, True),
    "view_invitations": (False, False, True, True),
    "invite": (False, False, True, True),
    "unlock_members": (False, False, True, True),
    "create_character": (False, True, True, True),
    "edit_character": (False, True, True, True),
    "clone_character": (False, True, True, True),
    "import_character": (False, True, True, True),
    "sync_character": (False, True, True, True),
    "export_character": (False, True, True, True),
    "rebind_character": (False, False, True, True),
    "delete_any_character": (False, False, True, True),
    "review_audit": (False, False, True, True),
    "export_audit": (False, False, True, True),
}


@pytest.mark.parametrize("answer", sorted(CAN))
def test_can_answers_for_every_role(answer: str) -> None:
    got = tuple(getattr(policy.Can(member(role)), answer) for role in ROLES)
    assert got == CAN[answer]


def test_can_refuses_a_question_it_does_not_know() -> None:
    """A typo in a template must not read as "no" (Django templates swallow AttributeError,
    but code and tests see it)."""
    with pytest.raises(AttributeError):
        _ = policy.Can(member(Role.OWNER)).delete_the_team


# --- Words shown to people ------------------------------------------------------------------------


def test_role_descriptions_cover_every_role_smallest_first() -> None:
    assert [role for role, _ in policy.role_descriptions()] == list(ROLES)
    assert all(text for _, text in policy.role_descriptions())


def test_abilities_grow_with_the_role() -> None:
    previous: list[str] = []
    for role in ROLES:
        lines = policy.abilities(role)
        assert lines[: len(previous)] == previous
        assert len(lines) > len(previous)
        previous = lines


@pytest.mark.parametrize("action", sorted(SMALLEST_ROLE))
def test_every_refusal_has_a_message(action: str) -> None:
    assert policy.refusal_message(action)
