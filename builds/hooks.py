"""What builds tells keys and teams about itself through their hooks (keys/hooks.py,
teams/hooks.py): the builds that stop minting when a key is revoked or its owner leaves a team,
for their dialogs and the key page. Registered once, from BuildsConfig.ready()."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from keys import hooks as keys_hooks
from keys.models import ApiKey
from teams import hooks as teams_hooks
from teams.models import Team

from .models import Build, Counter, MintedToken
from .selectors import builds_losing_key, stopped_builds_by_key


def _stopping(count: int, whose: str) -> str:
    if not count:
        return ""
    builds = f"{count} game build{'s' if count != 1 else ''}"
    return (
        f"{builds} minting tokens with {whose} will stop until an admin binds "
        f"{'it' if count == 1 else 'them'} to another member's key."
    )


def _after_revoking(api_key: ApiKey) -> str:
    return _stopping(builds_losing_key(api_key=api_key), "this key")


def _after_leaving(team: Team, user: User) -> str:
    return _stopping(builds_losing_key(team=team, owner=user), "these API keys")


def _key_page(user: User) -> list[str]:
    notices = []
    for builds in stopped_builds_by_key(user).values():
        key = builds[0].api_key
        # Builds of a team the user left are counted, not named: that team is not theirs now.
        named = [
            f"“{b.name}” ({b.team.name})" for b in builds if getattr(b, "owner_in_team", False)
        ]
        elsewhere = len(builds) - len(named)
        if elsewhere:
            named.append(f"{elsewhere} in teams you left")
        notices.append(
            f"Game builds that mint tokens with your key “{key.label if key else ''}” have "
            f"stopped, because the key was revoked or you left their team: {', '.join(named)}. "
            "An admin of each team must bind them to another member's key."
        )
    return notices


def _remove_team_builds(team: Team) -> int:
    """A deleted team's builds and their rate-limit windows (teams.hooks' remover, inside the
    team's deletion). The tokens the builds handed out outlive them (MintedToken.build is
    SET_NULL) until a task queued when the deletion commits revokes them at Convai through the
    keys that minted them (members keep their keys); the periodic tidy-up retries."""
    build_ids = [str(pk) for pk in Build.objects.filter(team=team).values_list("pk", flat=True)]
    scopes = [f"team:{team.pk}:hour"] + [
        f"build:{pk}:{window}" for pk in build_ids for window in ("minute", "hour")
    ]
    Counter.objects.filter(scope__in=scopes).delete()
    live = MintedToken.objects.filter(build__team=team, expires_at__gt=timezone.now()).exists()
    _, removed = Build.objects.filter(team=team).delete()
    if live:
        from .tasks import revoke_orphaned_tokens

        transaction.on_commit(lambda: revoke_orphaned_tokens.enqueue())
    return removed.get(Build._meta.label, 0)


def _count_team_builds(team: Team) -> int:
    return Build.objects.filter(team=team).live().count()


def register() -> None:
    keys_hooks.register_revoke_warning("builds", _after_revoking)
    keys_hooks.register_page_notice("builds", _key_page)
    teams_hooks.register_leave_warning("builds", _after_leaving)
    teams_hooks.register_team_remover("builds", _remove_team_builds)
    teams_hooks.register_team_counter("builds", _count_team_builds)
