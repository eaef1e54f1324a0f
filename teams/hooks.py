"""What the apps built on teams add to its pages, without teams importing them.

design.md: characters → teams, never back. The overview shows the team's characters, jobs and
activity, and the leave/remove dialogs warn about characters left without a usable key; deleting
a team removes the other apps' rows of it (characters, jobs, builds…) through their removers.
Teams asks here, and the apps register the answers in their AppConfig.ready()
(characters/hooks.py, jobs/apps.py).
With nothing registered the pages show only the team's own data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from accounts.models import User

    from .models import Membership, Team
    from .policy import Can


class OverviewSection(Protocol):
    def __call__(
        self, membership: Membership, can: Can, *, members: int, pending: int | None
    ) -> object: ...


_overview_sections: dict[str, OverviewSection] = {}
_bound_counters: dict[str, Callable[[Team, User], int]] = {}
_team_removers: dict[str, Callable[[Team], int]] = {}
_leave_warnings: dict[str, Callable[[Team, User], str]] = {}


def register_overview_section(name: str, section: OverviewSection) -> None:
    """`section(...)` becomes the overview template's `name` (`members` and `pending`: the
    team's own figures, `pending` None when the member may not see invitations)."""
    _overview_sections[name] = section


def overview_sections(
    membership: Membership, can: Can, *, members: int, pending: int | None
) -> dict[str, object]:
    return {
        name: section(membership, can, members=members, pending=pending)
        for name, section in _overview_sections.items()
    }


def register_bound_counter(name: str, counter: Callable[[Team, User], int]) -> None:
    """`counter(team, user)`: how many of the team's things work through the user's keys and
    become read-only when the user leaves it."""
    _bound_counters[name] = counter


def read_only_after_leaving(team: Team, user: User) -> int:
    return sum(counter(team, user) for counter in _bound_counters.values())


def register_team_remover(name: str, remover: Callable[[Team], int]) -> None:
    """`remover(team)`: delete the app's rows of a team being deleted, inside the deletion's
    transaction (so all go or none), and return how many things it removed (for the audit
    event). Remote things (characters on Convai) are not touched: deleting a team is local."""
    _team_removers[name] = remover


def remove_team_data(team: Team) -> dict[str, int]:
    """Every registered app's rows of the team, removed; how many each app removed."""
    return {name: remover(team) for name, remover in _team_removers.items()}


_team_archivers: dict[str, Callable[[Team, User], int]] = {}


def register_team_archiver(name: str, archiver: Callable[[Team, User], int]) -> None:
    """`archiver(team, user)`: stop the app's work in progress for a team being archived by
    `user` (a running job, say), inside the archiving's transaction, and return how many
    things it stopped (for the audit event)."""
    _team_archivers[name] = archiver


def stop_team_work(team: Team, user: User) -> dict[str, int]:
    """Every registered app's work in progress for the team, stopped; how many each stopped."""
    return {name: archiver(team, user) for name, archiver in _team_archivers.items()}


_team_counters: dict[str, Callable[[Team], int]] = {}


def register_team_counter(name: str, counter: Callable[[Team], int]) -> None:
    """`counter(team)`: how many of the app's things the team holds, named on the deletion's
    confirmation page (e.g. "characters")."""
    _team_counters[name] = counter


def team_contents(team: Team) -> dict[str, int]:
    return {name: counter(team) for name, counter in _team_counters.items()}


def register_leave_warning(name: str, warning: Callable[[Team, User], str]) -> None:
    """`warning(team, user)`: one sentence for the leave and remove dialogs about what else
    stops when the user's keys no longer serve the team ("" for nothing)."""
    _leave_warnings[name] = warning


def warnings_after_leaving(team: Team, user: User) -> list[str]:
    return [text for warning in _leave_warnings.values() if (text := warning(team, user))]
