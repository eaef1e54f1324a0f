"""Role-by-view matrix for every character URL: anonymous, another team's owner, and each role.

Expected statuses come from teams.policy (the shared helpers in tests.teams.test_role_matrix);
a refused request must change nothing. Authorized writes may fail at Convai (no sandbox runs
here: the client points at a closed port), which answers with a message, never a change.
The finer rule of deletion (Admin+, or the Editor who created it) is tested below the matrix.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from characters.models import Character, PendingOperation, Revision
from keys.models import ApiKey
from teams.models import Role
from tests.factories import CharacterFactory, MembershipFactory
from tests.support.role_matrix import (
    Endpoint,
    World,
    build_world,
    check_access,
    check_two_factor_gate,
    matrix_params,
)

pytestmark = pytest.mark.django_db


def _with_character(world: World) -> None:
    editor = world.members[Role.EDITOR]
    api_key = ApiKey.objects.create(
        owner=editor.user, label="Editor key", last_four="abcd", ciphertext=""
    )
    world.extra["character"] = CharacterFactory.create(
        team=world.team, created_by=editor.user, bound_key=api_key, name="Matrix Mira"
    )
    world.extra["key"] = api_key
    # A create whose outcome is unknown ("Check now" on the list).
    world.extra["operation"] = PendingOperation.objects.create(
        team=world.team,
        kind=PendingOperation.Kind.CREATE,
        token="matrix",
        actor=editor.user,
        api_key=api_key,
        name="Lost Mira",
    )
    # An earlier version to restore (history, compare and restore need one).
    Revision.objects.create(
        character=world.extra["character"],
        number=1,
        reason=Revision.Reason.CREATED,
        fields={**world.extra["character"].editable(), "name": "Older Mira"},
    )


def _one(world: World) -> dict[str, Any]:
    return {"character_id": world.extra["character"].pk}


def _operation(world: World) -> dict[str, Any]:
    return {"operation_id": world.extra["operation"].pk}


def _version(world: World) -> dict[str, Any]:
    return {"character_id": world.extra["character"].pk, "number": 1}


def _state(world: World) -> tuple[Any, ...]:
    character = Character.objects.get(pk=world.extra["character"].pk)
    return (character.name, character.version, character.deleted_at, character.bound_key_id)


def _changed(world: World) -> bool:
    return _state(world) != ("Matrix Mira", 1, None, world.extra["key"].pk) or (
        Character.objects.filter(team=world.team).count() != 1
    )


def _edit(world: World) -> dict[str, Any]:
    return {
        "name": "Renamed",
        "voice_type": "MALE",
        "backstory": "New",
        "actions": "",
        "language_codes": ["en-US"],
        "version": 1,
    }


ANSWERS = (200, 302)


def _post(url_name: str, action: str, **options: Any) -> Endpoint:
    """A POST that changes the character when allowed (200 with the form, or 302): refused,
    it must change nothing."""
    return Endpoint(url_name, "post", action, ok=ANSWERS, changed=_changed, **options)


CHARACTER_ENDPOINTS = [
    Endpoint("characters:character-list", "get", "character.view"),
    Endpoint("characters:character-list", "get", "character.view", htmx=True),
    Endpoint("characters:character-detail", "get", "character.view", url_kwargs=_one),
    Endpoint("characters:character-create", "get", "character.create"),
    _post(
        "characters:character-create",
        "character.create",
        data=lambda w: {**_edit(w), "api_key": str(w.extra["key"].pk)},
    ),
    Endpoint("characters:character-import", "get", "character.import"),
    _post(
        "characters:character-adopt",
        "character.import",
        data=lambda w: {"name": "Matrix Mira", "api_key": str(w.extra["key"].pk)},
    ),
    Endpoint("characters:voice-options", "get", "character.update", htmx=True),
    # The floor is viewing; the service asks the policy of the operation itself.
    _post("characters:operation-check", "character.view", url_kwargs=_operation),
    _post("characters:operation-dismiss", "character.view", url_kwargs=_operation),
    Endpoint("characters:character-edit", "get", "character.update", url_kwargs=_one),
    _post("characters:character-edit", "character.update", url_kwargs=_one, data=_edit),
    _post("characters:character-sync", "character.sync", url_kwargs=_one),
    _post("characters:character-keep-ours", "character.update", url_kwargs=_one),
    _post("characters:character-languages", "character.update", url_kwargs=_one),
    Endpoint("characters:character-clone", "get", "character.clone", url_kwargs=_one),
    Endpoint("characters:character-clone", "get", "character.clone", url_kwargs=_one, htmx=True),
    _post(
        "characters:character-clone",
        "character.clone",
        url_kwargs=_one,
        data=lambda w: {"new_name": "Copy"},
    ),
    Endpoint("characters:character-delete", "get", "character.delete", url_kwargs=_one),
    _post(
        "characters:character-delete",
        "character.delete",
        url_kwargs=_one,
        data=lambda w: {"confirm_name": "Matrix Mira"},
    ),
    Endpoint("characters:character-remove", "get", "character.delete", url_kwargs=_one),
    _post("characters:character-remove", "character.delete", url_kwargs=_one),
    Endpoint("characters:character-rebind", "get", "character.rebind", url_kwargs=_one),
    _post(
        "characters:character-rebind",
        "character.rebind",
        url_kwargs=_one,
        data=lambda w: {"api_key": str(w.extra["key"].pk)},
    ),
    Endpoint("characters:character-history", "get", "character.view", url_kwargs=_one),
    Endpoint("characters:character-compare", "get", "character.view", url_kwargs=_one),
    Endpoint("characters:character-compare", "get", "character.view", url_kwargs=_one, htmx=True),
    Endpoint("characters:character-restore", "get", "character.restore", url_kwargs=_version),
    Endpoint(
        "characters:character-restore",
        "get",
        "character.restore",
        url_kwargs=_version,
        htmx=True,
    ),
    _post(
        "characters:character-restore",
        "character.restore",
        url_kwargs=_version,
        data=lambda w: {"version": 1},
    ),
]


@pytest.mark.parametrize(("endpoint", "actor"), matrix_params(CHARACTER_ENDPOINTS))
def test_character_endpoints_role_matrix(client: Client, endpoint: Endpoint, actor: str) -> None:
    world = build_world(_with_character)
    check_access(client, world, endpoint, actor)
    if endpoint.method == "post":
        # No Convai is reachable here: whatever the role, nothing changed.
        assert not _changed(world), f"{endpoint} as {actor} changed the character"


@pytest.mark.parametrize("endpoint", CHARACTER_ENDPOINTS, ids=str)
def test_character_endpoints_two_factor_gate(client: Client, endpoint: Endpoint) -> None:
    check_two_factor_gate(client, build_world(_with_character), endpoint)


def test_matrix_covers_every_character_url() -> None:
    from characters import urls

    covered = {endpoint.url_name.split(":")[1] for endpoint in CHARACTER_ENDPOINTS}
    assert {pattern.name for pattern in urls.urlpatterns} <= covered


def test_another_teams_character_is_a_404(client: Client) -> None:
    world = build_world(_with_character)
    client.force_login(world.outsider.user)
    url = reverse(
        "characters:character-detail",
        kwargs={"team_slug": world.other_team.slug, "character_id": world.extra["character"].pk},
    )
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(("creator", "allowed"), [(True, True), (False, False)])
def test_an_editor_deletes_only_what_they_created(
    client: Client, creator: bool, allowed: bool
) -> None:
    """The floor lets every Editor reach the page; the service refuses the Editor who did not
    create it, once, and nothing changes."""
    world = build_world(_with_character)
    editor = (
        world.members[Role.EDITOR]
        if creator
        else MembershipFactory.create(team=world.team, role=Role.EDITOR)
    )
    client.force_login(editor.user)
    url = reverse(
        "characters:character-delete",
        kwargs={"team_slug": world.team.slug, "character_id": world.extra["character"].pk},
    )
    client.post(url, {"confirm_name": "Matrix Mira"})
    denied = AuditEvent.objects.filter(action="character.delete", outcome=Outcome.DENIED)
    assert denied.count() == (0 if allowed else 1)
    assert not _changed(world)
