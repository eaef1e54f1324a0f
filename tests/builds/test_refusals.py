"""The token endpoint's refusals: each with its status and code, JSON, audited (never with a
secret), and changing nothing — no token minted, no limit spent."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.chain import verify_scope
from audit.models import AuditEvent, Outcome
from builds import services
from builds.models import Build, Counter, MintedToken
from builds.services import Issued
from builds.tasks import revoke_build_tokens, revoke_orphaned_tokens
from keys.models import ApiKey
from sandbox.services import revoke_sandbox_keys, set_fault
from teams import services as teams
from teams.models import Membership, Role
from tests.builds.conftest import CREDENTIAL_HEADER
from tests.factories import MembershipFactory
from tests.support.characters import Key

pytestmark = pytest.mark.django_db(transaction=True)


def ask(client: Client, issued: Issued, credential: str | None = None, **headers: str) -> Any:
    url = reverse("builds:token", args=[issued.build.pk])
    header = {CREDENTIAL_HEADER: issued.credential if credential is None else credential}
    return client.get(url, headers={**header, **headers})


def refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == code
    assert "apiAuthToken" not in response.json()


def nothing_minted() -> bool:
    return (
        not MintedToken.objects.exists()
        and not AuditEvent.objects.filter(action="build.token_minted").exists()
    )


@pytest.mark.parametrize(
    "credential",
    ["", "cvb_0000000000_wrong", "not-a-credential", "cvb_short_x"],
)
def test_a_missing_or_wrong_credential_is_401(
    client: Client, issued: Issued, credential: str
) -> None:
    refused(ask(client, issued, credential), 401, "credential_invalid")
    assert nothing_minted()


def test_the_right_prefix_with_a_wrong_secret_is_401(client: Client, issued: Issued) -> None:
    forged = issued.credential[:-4] + ("AAAA" if not issued.credential.endswith("AAAA") else "BBBB")
    refused(ask(client, issued, forged), 401, "credential_invalid")


def test_an_unknown_build_is_401_like_a_wrong_credential(client: Client, issued: Issued) -> None:
    url = reverse("builds:token", args=["00000000-0000-0000-0000-000000000000"])
    refused(
        client.get(url, headers={CREDENTIAL_HEADER: issued.credential}), 401, "credential_invalid"
    )


def test_plain_http_from_elsewhere_is_refused(client: Client, issued: Issued) -> None:
    response = client.get(
        reverse("builds:token", args=[issued.build.pk]),
        headers={CREDENTIAL_HEADER: issued.credential},
        REMOTE_ADDR="203.0.113.7",
    )
    refused(response, 403, "https_required")
    assert nothing_minted()


def test_https_from_elsewhere_is_served(client: Client, issued: Issued) -> None:
    response = client.get(
        reverse("builds:token", args=[issued.build.pk]),
        headers={CREDENTIAL_HEADER: issued.credential},
        REMOTE_ADDR="203.0.113.7",
        secure=True,
    )
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="build.token_minted").ip_address == "203.0.113.7"


def test_a_revoked_build_is_refused_and_its_tokens_revoked_at_convai(
    client: Client, issued: Issued, admin: Membership, sandbox_url: str
) -> None:
    token = ask(client, issued).json()["apiAuthToken"]
    assert MintedToken.objects.count() == 1
    services.revoke_build(actor=admin, build_id=issued.build.pk)
    refused(ask(client, issued), 403, "build_revoked")
    # Revoking at Convai is queued for the worker when the revocation commits; run it here.
    queued = DBTaskResult.objects.get(task_path="builds.tasks.revoke_build_tokens")
    assert queued.args_kwargs["args"] == [str(issued.build.pk)]
    assert revoke_build_tokens.call(str(issued.build.pk)).startswith("1 tokens revoked")
    assert not MintedToken.objects.exists()
    import requests

    at_convai = requests.post(
        f"{sandbox_url}/character/list", headers={"API-AUTH-TOKEN": token}, timeout=10
    )
    assert at_convai.status_code == 401
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "outcome"))
    assert ("build.revoked", Outcome.SUCCESS) in actions
    assert ("build.tokens_revoked", Outcome.SUCCESS) in actions
    assert ("build.token_refused", Outcome.DENIED) in actions


def test_a_rebound_build_revokes_its_older_tokens_through_the_key_that_minted_them(
    client: Client,
    issued: Issued,
    admin: Membership,
    admin_key: Key,
    add_key: Callable[..., Key],
    sandbox_url: str,
) -> None:
    older = ask(client, issued).json()["apiAuthToken"]
    colleague = MembershipFactory.create(team=admin.team, role=Role.EDITOR)
    other_key = add_key(colleague, "Colleague key")
    build = issued.build
    services.update_build(
        actor=admin,
        build_id=build.pk,
        settings_=services.BuildSettings(
            name=build.name,
            api_key_id=other_key.pk,
            allowed_origins=build.allowed_origins,
            burst_per_minute=build.burst_per_minute,
            per_hour=build.per_hour,
            expires_at=build.expires_at,
        ),
    )
    newer = ask(client, issued).json()["apiAuthToken"]
    assert sorted(MintedToken.objects.values_list("api_key_id", flat=True)) == sorted(
        [admin_key.pk, other_key.pk]
    )
    services.revoke_build(actor=admin, build_id=build.pk)

    assert revoke_build_tokens.call(str(build.pk)).startswith("2 tokens revoked")

    import requests

    for token in (older, newer):
        at_convai = requests.post(
            f"{sandbox_url}/character/list", headers={"API-AUTH-TOKEN": token}, timeout=10
        )
        assert at_convai.status_code == 401


def test_an_expired_build_is_refused(client: Client, issued: Issued) -> None:
    Build.objects.filter(pk=issued.build.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    refused(ask(client, issued), 403, "build_expired")
    assert nothing_minted()


def test_rotation_keeps_the_old_credential_for_the_overlap_only(
    client: Client, issued: Issued, admin: Membership
) -> None:
    rotated = services.rotate_credential(
        actor=admin, build_id=issued.build.pk, overlap=timedelta(hours=1)
    )
    assert ask(client, issued).status_code == 200  # the old one, during the overlap
    assert ask(client, issued, rotated.credential).status_code == 200
    Build.objects.filter(pk=issued.build.pk).update(
        previous_valid_until=timezone.now() - timedelta(seconds=1)
    )
    refused(ask(client, issued), 401, "credential_invalid")
    assert ask(client, issued, rotated.credential).status_code == 200
    # Rotating again without overlap: the one before stops at once.
    third = services.rotate_credential(actor=admin, build_id=issued.build.pk, overlap=timedelta(0))
    refused(ask(client, issued, rotated.credential), 401, "credential_invalid")
    assert ask(client, issued, third.credential).status_code == 200


def test_the_burst_limit_answers_429_with_retry_after(
    client: Client, register: Callable[..., Issued]
) -> None:
    issued = register(burst_per_minute=2, per_hour=10)
    assert ask(client, issued).status_code == 200
    assert ask(client, issued).status_code == 200
    response = ask(client, issued)
    refused(response, 429, "burst")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert MintedToken.objects.count() == 2
    # A stream of the same refusal is audited once a minute, not once a request.
    ask(client, issued)
    assert AuditEvent.objects.filter(action="build.token_refused").count() == 1


def test_the_hourly_limit_and_the_team_cap(
    client: Client, register: Callable[..., Issued], settings: Any
) -> None:
    issued = register(burst_per_minute=5, per_hour=1)
    assert ask(client, issued).status_code == 200
    response = ask(client, issued)
    refused(response, 429, "hourly")
    assert 1 <= int(response["Retry-After"]) <= 3600
    settings.CONVAI_BUILD_TEAM_PER_HOUR = 2
    other = register(name="Other build")
    assert ask(client, other).status_code == 200
    refused(ask(client, other), 429, "team_hourly")


def test_limits_hold_across_processes_because_they_live_in_the_database(
    client: Client, register: Callable[..., Issued]
) -> None:
    issued = register(burst_per_minute=1, per_hour=10)
    assert ask(client, issued).status_code == 200
    rows = {c.scope: c.count for c in Counter.objects.all()}
    assert rows == {
        f"build:{issued.build.pk}:minute": 1,
        f"build:{issued.build.pk}:hour": 1,
        f"team:{issued.build.team_id}:hour": 1,
    }


def test_a_convai_failure_does_not_spend_the_limit(
    client: Client, register: Callable[..., Issued], admin_key: Key
) -> None:
    issued = register(burst_per_minute=1, per_hour=10)
    set_fault(key_label=admin_key.sandbox_label, outage=True)
    refused(ask(client, issued), 503, "convai_failed")
    set_fault(key_label=admin_key.sandbox_label, rate_limit=True, retry_after=9)
    response = ask(client, issued)
    refused(response, 429, "convai_rate_limited")
    assert response["Retry-After"] == "9"
    set_fault(key_label=admin_key.sandbox_label)
    assert ask(client, issued).status_code == 200  # the failures did not use the burst of 1


def test_a_key_rejected_by_convai_is_a_gateway_error(
    client: Client, issued: Issued, admin_key: Key
) -> None:
    revoke_sandbox_keys(admin_key.sandbox_label)
    refused(ask(client, issued), 502, "convai_failed")
    assert nothing_minted()


def test_a_removed_members_key_stops_the_build(
    client: Client, issued: Issued, admin: Membership
) -> None:
    owner = MembershipFactory.create(team=admin.team, role=Role.OWNER)
    teams.remove_member(actor=owner, membership_id=admin.pk)
    refused(ask(client, issued), 503, "key_unusable")
    assert nothing_minted()


def test_refusals_are_audited_without_secrets(client: Client, issued: Issued) -> None:
    ask(client, issued, "cvb_0000000000_wrong")
    client.get(
        reverse("builds:token", args=[issued.build.pk]),
        headers={CREDENTIAL_HEADER: issued.credential},
        REMOTE_ADDR="203.0.113.7",
    )
    events = AuditEvent.objects.filter(action="build.token_refused")
    assert {e.details["reason"] for e in events} == {"credential_invalid", "https_required"}
    for event in events:
        assert issued.credential not in str(event.details)
        assert event.outcome == Outcome.DENIED


def test_an_archived_teams_build_is_refused_until_unarchived(
    client: Client, issued: Issued
) -> None:
    issued.build.team.archived_at = timezone.now()
    issued.build.team.save(update_fields=["archived_at"])
    refused(ask(client, issued), 403, "team_archived")
    assert nothing_minted()
    issued.build.team.archived_at = None
    issued.build.team.save(update_fields=["archived_at"])
    assert ask(client, issued).status_code == 200


def test_deleting_the_team_deletes_its_builds_and_revokes_their_tokens_at_convai(
    client: Client, issued: Issued, admin: Membership, sandbox_url: str
) -> None:
    """The builds and their windows go with the team; the tokens they handed out outlive them
    until a task queued at the deletion's commit revokes them at Convai through the key that
    minted them. The team's chain is sealed, so that pass is recorded in the global chain."""
    from teams import lifecycle

    token = ask(client, issued).json()["apiAuthToken"]
    owner = MembershipFactory.create(team=admin.team, role=Role.OWNER)
    team_id = admin.team.pk
    lifecycle.delete_team(actor=owner)
    assert not Build.objects.exists()
    assert not Counter.objects.filter(scope__contains=str(issued.build.pk)).exists()
    assert not Counter.objects.filter(scope=f"team:{team_id}:hour").exists()
    refused(ask(client, issued), 401, "credential_invalid")
    (kept,) = MintedToken.objects.all()
    assert (kept.build_id, kept.build_ref) == (None, issued.build.pk)

    DBTaskResult.objects.get(task_path="builds.tasks.revoke_orphaned_tokens")
    assert revoke_orphaned_tokens.call().startswith("1 tokens of deleted teams' builds revoked")

    assert not MintedToken.objects.exists()
    import requests

    at_convai = requests.post(
        f"{sandbox_url}/character/list", headers={"API-AUTH-TOKEN": token}, timeout=10
    )
    assert at_convai.status_code == 401
    event = AuditEvent.objects.get(action="build.tokens_revoked")
    assert (event.team_id, event.chain, event.target_id) == (None, "global", str(issued.build.pk))
    assert event.details == {"revoked": 1, "failed": 0, "team_deleted": True}
    assert token not in json.dumps(event.details)
    assert verify_scope(f"team:{team_id}").intact


def test_a_deleted_teams_tokens_minted_by_a_revoked_key_are_said_unrevocable_once(
    client: Client, issued: Issued, admin: Membership
) -> None:
    """Nothing can revoke them at Convai (the key that minted them is revoked, and Convai
    refuses another account's token): the pass says so once and forgets them (they expire
    within the hour), so the tidy-up does not record the same failure every ten minutes."""
    from teams import lifecycle

    ask(client, issued)
    owner = MembershipFactory.create(team=admin.team, role=Role.OWNER)
    lifecycle.delete_team(actor=owner)
    ApiKey.objects.filter(pk=issued.build.api_key_id).update(revoked_at=timezone.now())

    assert services.revoke_orphaned_tokens().startswith("0 tokens")
    event = AuditEvent.objects.get(action="build.tokens_revoked")
    assert event.outcome == Outcome.FAILURE
    assert event.details == {
        "revoked": 0,
        "failed": 0,
        "unrevocable": 1,
        "team_deleted": True,
        "reason": "the key that minted them was revoked: they expire by themselves",
    }
    assert not MintedToken.objects.exists()
    services.tidy_minted_tokens()
    assert AuditEvent.objects.filter(action="build.tokens_revoked").count() == 1
