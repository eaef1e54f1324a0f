"""What characters tells teams and keys about itself through their hooks (teams/hooks.py,
keys/hooks.py): the overview's dashboard, and the characters a departing member or a revoked
key leaves read-only. Registered once, from CharactersConfig.ready()."""

from __future__ import annotations

from accounts.models import User
from keys import hooks as keys_hooks
from keys.models import ApiKey
from teams import hooks as teams_hooks
from teams.models import Team

from .dashboard import team_dashboard
from .models import Character, PendingOperation
from .selectors import characters_losing_key


def _losing_owner(team: Team, user: User) -> int:
    return characters_losing_key(team=team, owner=user)


def _losing_key(api_key: ApiKey) -> int:
    return characters_losing_key(api_key=api_key)


def _remove_team_characters(team: Team) -> int:
    """A deleted team's local characters, their revisions and pending operations (the
    characters themselves stay on Convai, with the keys that own them)."""
    PendingOperation.objects.filter(team=team).delete()
    _, removed = Character.objects.filter(team=team).delete()
    return removed.get(Character._meta.label, 0)


def _count_team_characters(team: Team) -> int:
    return Character.objects.filter(team=team, deleted_at__isnull=True).count()


def register() -> None:
    teams_hooks.register_overview_section("dashboard", team_dashboard)
    teams_hooks.register_bound_counter("characters", _losing_owner)
    teams_hooks.register_team_remover("characters", _remove_team_characters)
    teams_hooks.register_team_counter("characters", _count_team_characters)
    keys_hooks.register_bound_counter("characters", _losing_key)
