"""The team overview as a dashboard: characters changed in Convai, running and failed jobs,
recent activity (the whole log for those who may review it, character changes for the rest),
each key's quota (never a secret), and a first-run checklist that disappears once done. One
query budget, whatever the team's size."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.services import record
from characters.bulk.importing import IMPORT_ALL
from characters.bulk.syncing import SYNC_ALL
from jobs.models import Job
from keys.models import ApiKey
from teams.models import Membership, Role, Team
from tests.factories import CharacterFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

QUERY_BUDGET = 12  # the whole page, session, user and membership included


def overview(client: Client, member: Membership, *, login: bool = True) -> str:
    if login:
        client.force_login(member.user)
    response = client.get(reverse("teams:overview", args=[member.team.slug]))
    assert response.status_code == 200
    return response.content.decode()


def key_of(member: Membership, label: str = "Studio", **fields: object) -> ApiKey:
    return ApiKey.objects.create(
        owner=member.user,
        label=label,
        last_four="wxyz",
        ciphertext="SECRET-CIPHERTEXT",
        verified_at=timezone.now(),
        **fields,
    )


def fill(team: Team, size: int) -> None:
    """`size` of everything the dashboard reads: members with keys, characters (a third
    changed in Convai), jobs in every state, audit events."""
    for n in range(size):
        member = MembershipFactory.create(team=team, role=Role.EDITOR)
        key = key_of(
            member,
            f"Key {n}",
            convai_account=f"account-{n}",
            account_name=f"Account {n}",
            usage_metrics={"core-api": {"limit": 1000, "usage": n}},
        )
        CharacterFactory.create(
            team=team,
            bound_key=key,
            created_by=member.user,
            remote_changed_at=timezone.now() if n % 3 == 0 else None,
        )
        for state in Job.State.values:
            Job.objects.create(
                team=team,
                kind=SYNC_ALL,
                scope=f"x:{team.pk}:{n}:{state}",
                state=state,
                created_by=member.user,
            )
        record("member.role_changed", actor=member.user, team=team, target_type="membership")
        record(
            "character.update",
            actor=member.user,
            team=team,
            target_type="character",
            target_label=f"Character {n}",
        )


def test_the_first_run_checklist_disappears_when_done(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    owner = make_member(Role.OWNER)

    html = overview(client, owner)
    assert "Get started" in html and "0 of 3 done" in html
    assert "Add your Convai API key." in html
    assert "Import or create a character." in html and "Invite someone." in html

    key = key_of(owner)
    CharacterFactory.create(team=owner.team, bound_key=key)
    html = overview(client, owner)
    assert "2 of 3 done" in html and "Your Convai API key is added" in html

    make_member(Role.VIEWER)
    assert "Get started" not in overview(client, owner)


def test_a_viewer_has_no_checklist_and_sees_character_changes_only(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    viewer = make_member(Role.VIEWER)
    other = make_member(Role.ADMIN)
    record(
        "member.role_changed",
        actor=other.user,
        team=viewer.team,
        target_type="membership",
        target_label="Someone",
    )
    record(
        "character.update",
        actor=other.user,
        team=viewer.team,
        target_type="character",
        target_label="Raymond",
    )

    html = overview(client, viewer)

    assert "Get started" not in html
    assert "Recent changes to characters" in html
    assert "Raymond" in html and "Someone" not in html
    assert reverse("audit:log", args=[viewer.team.slug]) not in html


def test_an_admin_sees_the_whole_log(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    admin = make_member(Role.ADMIN)
    event = record(
        "member.role_changed",
        actor=admin.user,
        team=admin.team,
        target_type="membership",
        target_label="Someone",
    )
    record(
        "character.drift_detected", team=admin.team, target_type="character", target_label="Raymond"
    )

    html = overview(client, admin)

    assert "Recent activity" in html
    assert "Member role changed" in html and "Someone" in html
    assert reverse("audit:event", args=[admin.team.slug, event.pk]) in html
    assert "Seen changed in Convai" in html and "System" in html


def test_changed_in_convai_jobs_and_quota(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    viewer = make_member(Role.VIEWER)
    editor = make_member(Role.EDITOR)
    key = key_of(editor, "Writers' key", usage_metrics={"core-api": {"limit": 500, "usage": 120}})
    changed = CharacterFactory.create(
        team=viewer.team, name="Drifted Dan", bound_key=key, remote_changed_at=timezone.now()
    )
    CharacterFactory.create(team=viewer.team, name="Quiet Quinn", bound_key=key)
    running = Job.objects.create(
        team=viewer.team,
        kind=IMPORT_ALL,
        scope="a",
        state=Job.State.RUNNING,
        heartbeat_at=timezone.now(),
    )
    failed = Job.objects.create(team=viewer.team, kind=SYNC_ALL, scope="b", state=Job.State.FAILED)
    done = Job.objects.create(team=viewer.team, kind=SYNC_ALL, scope="c", state=Job.State.DONE)
    outsider = UserFactory.create()
    ApiKey.objects.create(owner=outsider, label="Not in this team", last_four="zzzz")

    html = overview(client, viewer)

    detail = reverse("characters:character-detail", args=[viewer.team.slug, changed.pk])
    assert f"{detail}#changed-in-convai" in html and "Quiet Quinn" not in html
    assert reverse("jobs:job-detail", args=[viewer.team.slug, running.pk]) in html
    assert reverse("jobs:job-detail", args=[viewer.team.slug, failed.pk]) in html
    assert reverse("jobs:job-detail", args=[viewer.team.slug, done.pk]) not in html
    assert "Writers&#x27; key" in html and "…wxyz" in html and "380 left" in html
    assert "Not in this team" not in html
    assert "SECRET-CIPHERTEXT" not in html


def test_the_page_costs_the_same_for_a_small_and_a_big_team(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    small = make_member(Role.OWNER)
    big = MembershipFactory.create(role=Role.OWNER)
    fill(small.team, 1)
    fill(big.team, 12)
    counts = []
    for member in (small, big):
        overview(client, member)  # signs in; the session's first write
        with CaptureQueriesContext(connection) as captured:
            overview(client, member, login=False)
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1], counts
    assert counts[1] <= QUERY_BUDGET, counts
