"""The leave, remove-member and revoke-key dialogs warn how many characters lose their usable
key. teams and keys do not import characters: they ask their hooks (teams.hooks, keys.hooks),
which characters fills from its AppConfig.ready() (characters/hooks.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from keys.models import ApiKey
from teams.models import Membership, Role, Team
from tests.factories import CharacterFactory, TeamFactory

pytestmark = pytest.mark.django_db


def _key(member: Membership) -> ApiKey:
    return ApiKey.objects.create(
        owner=member.user, label="main", last_four="abcd", verified_at=timezone.now()
    )


def _characters(team: Team, api_key: ApiKey, live: int, deleted: int = 0) -> None:
    CharacterFactory.create_batch(live, team=team, bound_key=api_key)
    CharacterFactory.create_batch(deleted, team=team, bound_key=api_key, deleted_at=timezone.now())


def test_leaving_warns_about_the_characters_bound_to_my_keys(
    team: Team, make_member: Callable[..., Membership], login: Callable[[Membership], Client]
) -> None:
    make_member(Role.OWNER)
    editor = make_member(Role.EDITOR)
    api_key = _key(editor)
    _characters(team, api_key, live=2, deleted=1)
    _characters(TeamFactory(), api_key, live=5)  # another team's: not this team's loss
    html = login(editor).get(reverse("teams:leave", args=[team.slug])).content.decode()
    assert "2 characters bound to your API keys will become read-only" in html


def test_removing_a_member_warns_about_their_characters(
    team: Team, make_member: Callable[..., Membership], login: Callable[[Membership], Client]
) -> None:
    admin = make_member(Role.ADMIN)
    editor = make_member(Role.EDITOR)
    _characters(team, _key(editor), live=1)
    url = reverse("teams:member-remove", args=[team.slug, editor.pk])
    html = login(admin).get(url).content.decode()
    assert "1 character bound to their API keys will become read-only" in html


def test_no_warning_without_bound_characters(
    team: Team, make_member: Callable[..., Membership], login: Callable[[Membership], Client]
) -> None:
    make_member(Role.OWNER)
    editor = make_member(Role.EDITOR)
    _key(editor)
    html = login(editor).get(reverse("teams:leave", args=[team.slug])).content.decode()
    assert "will become read-only" not in html


def test_revoking_a_key_warns_about_its_characters(
    team: Team, make_member: Callable[..., Membership], login: Callable[[Membership], Client]
) -> None:
    editor = make_member(Role.EDITOR)
    api_key = _key(editor)
    _characters(team, api_key, live=3, deleted=2)
    html = login(editor).get(reverse("keys:revoke", args=[api_key.pk])).content.decode()
    assert "3 characters bound to this key will become read-only" in html


def test_teams_pages_work_with_nothing_registered(
    team: Team,
    make_member: Callable[..., Membership],
    login: Callable[[Membership], Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """teams stands on its own: without characters' hooks the overview shows the team's own
    figures and the leave dialog warns about nothing."""
    from teams import hooks

    monkeypatch.setattr(hooks, "_overview_sections", {})
    monkeypatch.setattr(hooks, "_bound_counters", {})
    make_member(Role.OWNER)
    editor = make_member(Role.EDITOR)
    _characters(team, _key(editor), live=2)
    client = login(editor)
    overview = client.get(reverse("teams:overview", args=[team.slug]))
    assert overview.status_code == 200
    leave = client.get(reverse("teams:leave", args=[team.slug])).content.decode()
    assert "will become read-only" not in leave
