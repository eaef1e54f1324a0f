"""What the team overview shows a studio every morning: characters changed in Convai, running and
failed jobs, recent activity, each key's quota, and a first-run checklist until it is done.

Read-only selectors over several apps (characters, jobs, keys, audit), hence here and not in
teams (which depends on none of them). Each part is one query, so the page costs the same
whatever the team's size; what a member sees follows teams.policy (`Can`), never roles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q
from django.urls import reverse

from accounts.models import User
from audit.models import AuditEvent
from audit.selectors import Criteria, events_matching
from jobs.models import Job
from keys.models import ApiKey
from keys.selectors import AccountGroup, account_groups
from teams.models import Membership, Team
from teams.policy import Can

from .history import ACTION_LABELS, OUTCOME_BADGES
from .models import Character
from .selectors import changed_characters

CHANGED_SHOWN = 5
JOBS_SHOWN = 5
ACTIVITY_SHOWN = 10
ACCOUNTS_SHOWN = 6
# Jobs worth a look in the morning: still going, or stopped badly.
JOB_STATES_SHOWN = (Job.State.QUEUED, Job.State.RUNNING, Job.State.FAILED, Job.State.INTERRUPTED)


@dataclass(frozen=True)
class Activity:
    """One audit event as the overview reads it: who did what to what, when, how it went."""

    event: AuditEvent

    @property
    def who(self) -> str:
        return self.event.actor_label or "System"

    @property
    def what(self) -> str:
        action = self.event.action
        return ACTION_LABELS.get(action) or action.replace(".", " ").replace("_", " ").capitalize()

    @property
    def badge(self) -> str:
        return OUTCOME_BADGES.get(self.event.outcome, "muted")


@dataclass(frozen=True)
class Step:
    """One step of the first-run checklist."""

    title: str
    done_title: str
    text: str
    url: str
    link: str
    done: bool


@dataclass
class Dashboard:
    character_count: int
    changed_count: int
    changed: list[Character]
    jobs: list[Job]
    activity: list[Activity]
    activity_is_whole_log: bool
    accounts: list[AccountGroup]
    checklist: list[Step] = field(default_factory=list)

    @property
    def show_checklist(self) -> bool:
        """Until every step the member can take is done; then it is gone for good."""
        return any(not step.done for step in self.checklist)

    @property
    def checklist_done(self) -> int:
        return sum(1 for step in self.checklist if step.done)


def _character_counts(team: Team) -> dict[str, int]:
    """Live, ever and changed-in-Convai counts in one query."""
    live = Q(deleted_at__isnull=True)
    return Character.objects.filter(team=team).aggregate(
        ever=Count("pk"),
        live=Count("pk", filter=live),
        changed=Count("pk", filter=live & Q(remote_changed_at__isnull=False)),
    )


def _quota_keys(team: Team, user: User) -> list[ApiKey]:
    """Keys whose quota the team spends: those bound to its live characters whose owner is
    still a member, and the viewer's own. Label, last four and usage only (never a secret)."""
    members = Membership.objects.filter(team=team).values("user_id")
    bound = Character.objects.filter(team=team, deleted_at__isnull=True).values("bound_key_id")
    return list(
        ApiKey.objects.filter(revoked_at__isnull=True)
        .filter(Q(owner=user) | Q(pk__in=bound, owner_id__in=members))
        .select_related("owner")
        .defer("ciphertext")
        .order_by("label", "pk")
    )


def _checklist(
    team: Team,
    can: Can,
    *,
    has_key: bool,
    counts: dict[str, int],
    members: int,
    pending: int | None,
) -> list[Step]:
    slug = team.slug
    steps = []
    if can.create_character:
        steps.append(
            Step(
                "Add your Convai API key",
                "Your Convai API key is added",
                "Checked with Convai, stored encrypted, never shown again.",
                reverse("keys:list") + "#add-key",
                "Add a key",
                has_key,
            )
        )
        steps.append(
            Step(
                "Import or create a character",
                "The team has characters",
                "Bring in what your Convai account already has, or start a new one.",
                reverse("characters:character-import", kwargs={"team_slug": slug}),
                "Import a character",
                counts["ever"] > 0,
            )
        )
    if can.invite:
        steps.append(
            Step(
                "Invite someone",
                "Someone is invited",
                "Writers, engineers, your lead: each with the role they need.",
                reverse("teams:invitation-create", kwargs={"team_slug": slug}),
                "Send an invitation",
                members > 1 or bool(pending),
            )
        )
    return steps


def team_dashboard(
    membership: Membership, can: Can, *, members: int, pending: int | None
) -> Dashboard:
    """Everything the overview shows beyond the team's own figures (`members`, `pending`
    invitations: None when the member may not see them)."""
    team, user = membership.team, membership.user
    counts = _character_counts(team)
    changed = list(
        changed_characters(team).only("pk", "name", "team_id", "remote_changed_at")[:CHANGED_SHOWN]
    )
    jobs = list(
        Job.objects.filter(team=team, state__in=JOB_STATES_SHOWN)
        .select_related("created_by")
        .order_by("-created_at", "-pk")[:JOBS_SHOWN]
    )
    whole_log = can.review_audit
    criteria = Criteria() if whole_log else Criteria(target_type="character")
    activity = [Activity(e) for e in events_matching(team.pk, criteria)[:ACTIVITY_SHOWN]]
    keys = _quota_keys(team, user)
    has_key = any(key.owner_id == user.pk for key in keys)
    return Dashboard(
        character_count=counts["live"],
        changed_count=counts["changed"],
        changed=changed,
        jobs=jobs,
        activity=activity,
        activity_is_whole_log=whole_log,
        accounts=account_groups(keys)[:ACCOUNTS_SHOWN],
        checklist=_checklist(
            team,
            can,
            has_key=has_key,
            counts=counts,
            members=members,
            pending=pending,
        ),
    )
