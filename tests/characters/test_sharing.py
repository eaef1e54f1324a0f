"""Sharing through bound keys: any member with the role acts through the character's key; a
revoked key or a departed owner makes the character read-only until an Admin rebinds it to
another member's verified key of the account that owns it. Against the live sandbox."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.utils import timezone

from audit.models import Outcome
from characters import binding, copying, errors, selectors, services
from characters.models import Character, Revision
from characters.selectors import CharacterFilters
from convai.client import ConvaiClient
from keys.services import add_api_key, revoke_api_key
from sandbox.models import Listing, SandboxCharacter
from sandbox.services import create_sandbox_key
from teams.models import Membership, Role
from teams.policy import NotAllowed
from teams.services import remove_member
from tests.characters.support import events, key_shown, remote
from tests.factories import MembershipFactory, TeamFactory
from tests.support.characters import BACKSTORY, Key
from tests.support.sandbox import hits

Create = Callable[..., services.Saved]
AddKey = Callable[..., Key]
MakeMember = Callable[..., Membership]
ACCOUNT = "studio-account"


@pytest.fixture
def owner(make_member: MakeMember, sandbox: str) -> Membership:
    """The Editor who created the character, with a key of the studio's Convai account."""
    return make_member(Role.EDITOR)


@pytest.fixture
def owner_key(add_key: AddKey, owner: Membership) -> Key:
    return add_key(owner, "Owner key", account=ACCOUNT)


@pytest.fixture
def character(create: Create, owner: Membership, owner_key: Key) -> Character:
    return create(actor=owner, key=owner_key).character


@pytest.fixture
def admin(make_member: MakeMember) -> Membership:
    return make_member(Role.ADMIN)


def edit(actor: Membership, character: Character, **changes: object) -> services.Saved:
    character.refresh_from_db()
    return services.update_character(
        actor=actor,
        character_id=character.pk,
        expected_version=character.version,
        fields={**character.editable(), **changes},
    )


def unusable_ids(character: Character) -> list[int]:
    return [
        c.pk for c in selectors.team_characters(character.team, CharacterFilters(unusable=True))
    ]


# --- roles ---------------------------------------------------------------------------------------


def test_a_viewer_cannot_create_even_with_a_key(make_member: MakeMember, add_key: AddKey) -> None:
    viewer = make_member(Role.VIEWER)
    key = add_key(viewer, "Viewer key")
    with pytest.raises(NotAllowed):
        services.create_character(
            actor=viewer,
            api_key_id=key.pk,
            name="Raymond",
            voice_type="MALE",
            backstory=BACKSTORY,
            actions=[],
            language_codes=[],
        )
    assert not SandboxCharacter.objects.exists()
    assert not Character.objects.exists()
    (event,) = events("character.create")
    assert event.outcome == Outcome.DENIED
    assert hits(key.raw) == 1  # only the verification when the key was added


def test_a_viewer_cannot_edit(character: Character, make_member: MakeMember) -> None:
    with pytest.raises(NotAllowed):
        edit(make_member(Role.VIEWER), character, name="Red")
    assert remote(character).character_name == "Raymond"


def test_an_editor_without_a_key_edits_a_teammates_character_through_its_bound_key(
    character: Character, owner_key: Key, make_member: MakeMember
) -> None:
    editor = make_member(Role.EDITOR)
    assert not editor.user.api_keys.exists()
    before = hits(owner_key.raw)

    saved = edit(editor, character, name="Red")

    assert saved.character.name == "Red"
    assert remote(character).character_name == "Red"
    assert hits(owner_key.raw) > before
    (event,) = events("character.update")
    assert event.actor_id == editor.user_id
    assert key_shown(event, owner_key), event.details
    latest = Character.objects.get(pk=character.pk).revisions.first()
    assert latest is not None and latest.created_by_id == editor.user_id


# --- losing the key ------------------------------------------------------------------------------


def _revoke(owner: Membership, owner_key: Key, admin: Membership) -> None:
    revoke_api_key(actor=owner.user, api_key_id=owner_key.pk)


def _remove_owner(owner: Membership, owner_key: Key, admin: Membership) -> None:
    remove_member(actor=admin, membership_id=owner.pk)


@pytest.mark.parametrize("lose_key", [_revoke, _remove_owner], ids=["revoked", "owner removed"])
def test_without_a_usable_key_the_character_is_read_only(
    character: Character,
    owner: Membership,
    owner_key: Key,
    admin: Membership,
    make_member: MakeMember,
    lose_key: Callable[[Membership, Key, Membership], None],
) -> None:
    assert selectors.key_is_usable(character)
    assert unusable_ids(character) == []
    assert selectors.characters_losing_key(team=character.team, api_key=owner_key.api_key) == 1

    lose_key(owner, owner_key, admin)

    character = Character.objects.select_related("bound_key").get(pk=character.pk)
    assert selectors.key_is_usable(character) is False
    assert unusable_ids(character) == [character.pk]
    listed = selectors.team_character(character.team, character.pk)
    assert listed is not None and listed.key_usable is False
    editor = make_member(Role.EDITOR)
    before = hits(owner_key.raw)
    with pytest.raises(errors.NoUsableKey):
        edit(editor, character, name="Red")
    with pytest.raises(errors.NoUsableKey):
        copying.clone_character(actor=editor, character_id=character.pk, new_name="")
    with pytest.raises(errors.NoUsableKey):
        services.delete_character(actor=admin, character_id=character.pk, confirm_name="Raymond")
    with pytest.raises(errors.NoUsableKey):
        services.take_remote_version(actor=editor, character_id=character.pk)
    assert hits(owner_key.raw) == before
    assert remote(character).character_name == "Raymond"
    character.refresh_from_db()
    assert (character.name, character.version, character.deleted_at) == ("Raymond", 1, None)


# --- rebinding -----------------------------------------------------------------------------------


@pytest.fixture
def colleague_key(make_member: MakeMember, add_key: AddKey) -> Key:
    """Another Editor's key of the same Convai account: a key to rebind to."""
    return add_key(make_member(Role.EDITOR), "Colleague key", account=ACCOUNT)


def test_an_admin_rebinds_to_another_members_key_of_the_same_account(
    character: Character,
    owner: Membership,
    owner_key: Key,
    admin: Membership,
    colleague_key: Key,
    make_member: MakeMember,
) -> None:
    revoke_api_key(actor=owner.user, api_key_id=owner_key.pk)

    saved = binding.rebind_character(
        actor=admin, character_id=character.pk, api_key_id=colleague_key.pk
    )

    character = Character.objects.select_related("bound_key").get(pk=character.pk)
    assert saved.character.bound_key_id == colleague_key.pk
    assert character.bound_key_id == colleague_key.pk
    assert selectors.key_is_usable(character)
    assert unusable_ids(character) == []
    (event,) = events("character.rebind")
    assert event.outcome == Outcome.SUCCESS
    assert event.details["bound_key"] == [
        f"Owner key (…{owner_key.raw[-4:]})",
        f"Colleague key (…{colleague_key.raw[-4:]})",
    ]
    # Editing works again, through the new key.
    before = hits(colleague_key.raw)
    edit(make_member(Role.EDITOR), character, name="Red")
    assert hits(colleague_key.raw) > before
    assert remote(character).character_name == "Red"


def test_a_rebind_waits_for_a_save_on_its_way_to_convai(
    character: Character,
    owner: Membership,
    owner_key: Key,
    admin: Membership,
    colleague_key: Key,
) -> None:
    """The save's write lands under the old binding's snapshot: rebinding meanwhile would
    store a snapshot read before it. Refused once, nothing changed; after the save, it works."""
    Character.objects.filter(pk=character.pk).update(
        saving_token="theirs", saving_since=timezone.now(), saving_by=owner.user
    )

    with pytest.raises(errors.CharacterError, match="is saving this character right now"):
        binding.rebind_character(
            actor=admin, character_id=character.pk, api_key_id=colleague_key.pk
        )

    character.refresh_from_db()
    assert (character.bound_key_id, character.version) == (owner_key.pk, 1)
    (refusal,) = events("character.rebind")
    assert refusal.outcome == Outcome.FAILURE
    assert refusal.details["reason"] == "save in progress"

    Character.objects.filter(pk=character.pk).update(saving_token="", saving_since=None)
    binding.rebind_character(actor=admin, character_id=character.pk, api_key_id=colleague_key.pk)
    character.refresh_from_db()
    assert (character.bound_key_id, character.version) == (colleague_key.pk, 2)


def test_a_rebind_stores_a_revision_like_any_save(
    character: Character,
    owner: Membership,
    owner_key: Key,
    admin: Membership,
    colleague_key: Key,
) -> None:
    revoke_api_key(actor=owner.user, api_key_id=owner_key.pk)

    saved = binding.rebind_character(
        actor=admin, character_id=character.pk, api_key_id=colleague_key.pk
    )

    character.refresh_from_db()
    assert saved.character.version == character.version == 2
    latest, first = character.revisions.all()
    assert (first.number, first.reason) == (1, Revision.Reason.CREATED)
    assert (latest.number, latest.reason) == (2, Revision.Reason.REBOUND)
    assert latest.created_by_id == admin.user_id
    assert latest.fields == character.editable()
    assert latest.snapshot["character_id"] == character.convai_id
    assert f"…{colleague_key.raw[-4:]}" in latest.note
    # A form opened before the rebind is a conflict now, like after any other save.
    with pytest.raises(errors.Conflict):
        services.update_character(
            actor=admin,
            character_id=character.pk,
            expected_version=1,
            fields={**character.editable(), "name": "Red"},
        )


@pytest.mark.parametrize("listing", [Listing.PUBLIC, Listing.UNLISTED])
def test_rebinding_to_a_key_whose_account_does_not_own_it_is_refused(
    character: Character,
    owner: Membership,
    owner_key: Key,
    admin: Membership,
    make_member: MakeMember,
    add_key: AddKey,
    listing: str,
) -> None:
    """Public: the other account's get finds it but its list does not have it. Unlisted: its
    get cannot even find it. Either way a clear refusal naming the key, nothing changed."""
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(listing=listing)
    stranger = make_member(Role.EDITOR)
    stranger_key = add_key(stranger, "Personal key")  # its own Convai account

    with pytest.raises(errors.KeyNotUsable) as caught:
        binding.rebind_character(actor=admin, character_id=character.pk, api_key_id=stranger_key.pk)

    assert "Personal key" in caught.value.message
    character.refresh_from_db()
    assert character.bound_key_id == owner_key.pk
    (event,) = events("character.rebind")
    assert event.outcome == Outcome.FAILURE


def test_only_admins_rebind(character: Character, make_member: MakeMember, add_key: AddKey) -> None:
    editor = make_member(Role.EDITOR)
    key = add_key(editor, "Editor key", account=ACCOUNT)
    with pytest.raises(NotAllowed):
        binding.rebind_character(actor=editor, character_id=character.pk, api_key_id=key.pk)
    character.refresh_from_db()
    assert character.bound_key_id != key.pk
    (event,) = events("character.rebind")
    assert event.outcome == Outcome.DENIED


def test_rebind_candidates_are_verified_active_keys_of_current_members(
    character: Character,
    owner_key: Key,
    editor_key: Key,
    admin: Membership,
    make_member: MakeMember,
    add_key: AddKey,
) -> None:
    viewer = make_member(Role.VIEWER)
    viewer_key = add_key(viewer, "Viewer key", account=ACCOUNT)
    unverified = add_api_key(
        actor=viewer.user,
        label="Unverified",
        raw_key=create_sandbox_key("unverified", account=ACCOUNT),
        skip_verification=True,
    )
    revoked = add_key(viewer, "Revoked key", account=ACCOUNT)
    revoke_api_key(actor=viewer.user, api_key_id=revoked.pk)
    leaver = make_member(Role.EDITOR)
    leaver_key = add_key(leaver, "Leaver key", account=ACCOUNT)
    remove_member(actor=admin, membership_id=leaver.pk)
    outsider = MembershipFactory(team=TeamFactory(), role=Role.OWNER)
    outsider_key = add_key(outsider, "Outsider key", account=ACCOUNT)

    candidates = {key.pk for key in selectors.rebind_candidates(character.team_id)}

    # editor_key: the key of the `create` fixture's Editor, a current member too.
    assert candidates == {owner_key.pk, viewer_key.pk, editor_key.pk}
    for refused in (unverified.pk, revoked.pk, leaver_key.pk, outsider_key.pk):
        with pytest.raises(errors.KeyNotUsable):
            binding.rebind_character(actor=admin, character_id=character.pk, api_key_id=refused)
    character.refresh_from_db()
    assert character.bound_key_id == owner_key.pk


def test_a_key_of_the_same_account_sees_the_same_characters(
    character: Character, make_client: Callable[..., ConvaiClient]
) -> None:
    """What makes rebinding testable: the sandbox's keys of one account share characters."""
    colleague = make_client(create_sandbox_key("colleague", account=ACCOUNT))
    assert [c.character_id for c in colleague.list_characters()] == [character.convai_id]
    assert colleague.get_character(character.convai_id).backstory == BACKSTORY
