"""teams.policy, the only code that knows who may do what: every action against every role, the
rules that depend on a target, and the per-request answers templates test.

The expected answers are written out here from design.md (Roles and sharing), not computed
from the policy's own tables: a change to the policy must change this table too."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import count
from typing import Any

import pytest
from django.template import Context, Template

from teams import policy
from teams.models import Membership, Role, Team

ROLES = (Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER)

# The smallest role that may attempt each action (design.md, Roles and sharing).
SMALLEST_ROLE: dict[str, Role] = {
    "team.view": Role.VIEWER,
    "team.leave": Role.VIEWER,
    "team.rename": Role.OWNER,
    "team.settings": Role.OWNER,
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
    "build.view": Role.VIEWER,
    "build.manage": Role.ADMIN,
}

_ids = count(1)
_TEAM = Team(pk=1, name="Studio", slug="studio")  # not archived


def member(role: Role, *, user_id: int | None = None) -> Membership:
    """An unsaved membership: the policy answers without the database."""
    pk = next(_ids)
    return Membership(pk=pk, role=role, user_id=user_id or pk, team=_TEAM)


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
        policy.floor("team.destroy")
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


def test_can_refuses_a_question_it_does_not_know(settings: Any) -> None:
    """A typo in a template must not read as "no": Django templates swallow AttributeError, so
    with strict permissions (tests, DEBUG) an unknown answer raises something else."""
    settings.CONVAI_ADMIN_STRICT_PERMISSIONS = True
    with pytest.raises(policy.UnknownAnswer):
        _ = policy.Can(member(Role.OWNER)).delete_the_team


def test_a_typo_in_a_template_fails_the_page_in_tests(settings: Any) -> None:
    settings.CONVAI_ADMIN_STRICT_PERMISSIONS = True
    template = Template("{% if can.delete_the_team %}yes{% endif %}")
    with pytest.raises(policy.UnknownAnswer):
        template.render(Context({"can": policy.Can(member(Role.OWNER))}))
    assert (
        Template("{% if can.invite %}yes{% endif %}").render(
            Context({"can": policy.Can(member(Role.OWNER))})
        )
        == "yes"
    )


def test_without_strict_permissions_an_unknown_answer_is_an_attribute_error(
    settings: Any,
) -> None:
    settings.CONVAI_ADMIN_STRICT_PERMISSIONS = False
    can = policy.Can(member(Role.OWNER))
    assert not hasattr(can, "delete_the_team")
    assert (
        Template("{% if can.delete_the_team %}yes{% endif %}").render(Context({"can": can})) == ""
    )


def test_can_answers_are_properties_not_guesses() -> None:
    """Every answer is written out on the class (no __getattr__ mapping)."""
    answers = {
        name for name, value in vars(policy.Can).items() if isinstance(value, cached_property)
    }
    assert set(CAN) <= answers


# --- The last-Owner rule and the Members page's controls ---------------------------------------


@pytest.mark.parametrize(
    ("role", "new_role", "owners", "expected"),
    [
        (Role.OWNER, None, 1, True),
        (Role.OWNER, Role.ADMIN, 1, True),
        (Role.OWNER, Role.OWNER, 1, False),
        (Role.OWNER, None, 2, False),
        (Role.OWNER, Role.VIEWER, 2, False),
        (Role.ADMIN, None, 1, False),
        (Role.ADMIN, None, 0, False),
    ],
)
def test_a_team_keeps_an_owner(
    role: Role, new_role: Role | None, owners: int, expected: bool
) -> None:
    assert policy.leaves_no_owner(role, new_role, owners) is expected


def test_the_owner_count_is_asked_only_when_it_matters() -> None:
    def never() -> int:
        raise AssertionError("counted owners for a non-Owner")

    assert policy.leaves_no_owner(Role.ADMIN, None, never) is False
    assert policy.leaves_no_owner(Role.OWNER, None, lambda: 1) is True


def test_member_controls_of_the_only_owner_for_themselves() -> None:
    owner = member(Role.OWNER)
    controls = policy.member_controls(owner, owner, owners=1)
    assert controls.offered == [Role.OWNER]
    assert not controls.change_role
    assert not controls.remove
    assert not controls.leave
    assert controls.note == "Only Owner"


def test_member_controls_of_one_of_two_owners_for_themselves() -> None:
    owner = member(Role.OWNER)
    controls = policy.member_controls(owner, owner, owners=2)
    assert controls.offered == [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER]
    assert controls.change_role  # an Owner may step down while another Owner remains
    assert controls.leave
    assert not controls.remove  # themselves: they leave instead


def test_member_controls_of_an_admin_for_an_editor_and_an_owner() -> None:
    admin = member(Role.ADMIN)
    editor = policy.member_controls(admin, member(Role.EDITOR), owners=1)
    assert editor.offered == [Role.EDITOR, Role.VIEWER]
    assert editor.change_role and editor.remove and editor.unlock
    assert not editor.leave
    owner = policy.member_controls(admin, member(Role.OWNER), owners=1)
    assert not owner.change_role and not owner.remove and not owner.unlock
    assert owner.note == "Owners only"


@pytest.mark.parametrize(
    ("role", "ask"),
    [
        (Role.VIEWER, "an admin"),
        (Role.EDITOR, "an admin"),
        (Role.ADMIN, "an Owner"),
        (Role.OWNER, ""),
    ],
)
def test_role_guidance_says_whom_to_ask(role: Role, ask: str) -> None:
    guidance = policy.role_guidance(role)
    assert guidance.ask == ask
    assert guidance.setting


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
