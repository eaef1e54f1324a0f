"""Role-by-view matrix for the job, bundle and audit URLs: anonymous, another team's owner and
each role, expected statuses from teams.policy (the shared helpers of the teams matrix), and
refused requests change nothing. The finer rules (the job's own kind, who may export what) are
tested in tests/jobs, tests/characters/test_bundles.py and tests/audit."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from audit.services import record
from characters.bulk.importing import IMPORT_ALL
from jobs.models import Job
from keys.models import ApiKey
from teams.models import Role
from tests.factories import CharacterFactory
from tests.support.role_matrix import (
    Endpoint,
    World,
    build_world,
    check_access,
    check_two_factor_gate,
    matrix_params,
)

pytestmark = pytest.mark.django_db


def _objects(world: World) -> None:
    editor = world.members[Role.EDITOR]
    api_key = ApiKey.objects.create(owner=editor.user, label="Editor key", last_four="abcd")
    world.extra["character"] = CharacterFactory.create(
        team=world.team, created_by=editor.user, bound_key=api_key
    )
    world.extra["job"] = Job.objects.create(
        team=world.team,
        kind=IMPORT_ALL,
        scope=f"key:{api_key.pk}",
        api_key=api_key,
        created_by=editor.user,
        state=Job.State.QUEUED,
    )
    world.extra["event"] = record("team.renamed", actor=editor.user, team=world.team)


def _job(world: World) -> dict[str, Any]:
    return {"job_id": world.extra["job"].pk}


def _character(world: World) -> dict[str, Any]:
    return {"character_id": world.extra["character"].pk}


def _event(world: World) -> dict[str, Any]:
    return {"event_id": world.extra["event"].pk}


def _job_changed(world: World) -> bool:
    job = Job.objects.get(pk=world.extra["job"].pk)
    return job.state != Job.State.QUEUED or job.cancel_requested_at is not None


ENDPOINTS = [
    Endpoint("jobs:import-all", "get", "character.import"),
    Endpoint("jobs:sync-all", "get", "character.sync"),
    Endpoint("jobs:job-list", "get", "job.view"),
    Endpoint("jobs:job-detail", "get", "job.view", url_kwargs=_job),
    Endpoint("jobs:job-detail", "get", "job.view", url_kwargs=_job, htmx=True),
    Endpoint(
        "jobs:job-cancel", "post", "job.cancel", url_kwargs=_job, ok=(302,), changed=_job_changed
    ),
    # A queued job cannot be resumed: an allowed member is told so (302), nothing changes.
    Endpoint(
        "jobs:job-resume", "post", "job.resume", url_kwargs=_job, ok=(302,), changed=_job_changed
    ),
    # A queued job has nothing to retry: an allowed member is told so (302), nothing starts.
    Endpoint(
        "jobs:job-retry",
        "post",
        "job.retry",
        url_kwargs=_job,
        ok=(302,),
        changed=lambda w: Job.objects.count() != 1,
    ),
    Endpoint("bundles:export", "get", "character.export"),
    Endpoint("bundles:export-one", "get", "character.export", url_kwargs=_character),
    Endpoint("bundles:copy", "get", "character.copy", url_kwargs=_character),
    Endpoint("bundles:import", "get", "character.import"),
    # An unknown (or expired) upload token: allowed members are sent back to the upload form;
    # the others are refused before the lookup.
    Endpoint(
        "bundles:preview",
        "get",
        "character.import",
        url_kwargs=lambda w: {"token": "x" * 32},
        ok=(302,),
    ),
    Endpoint("audit:log", "get", "audit.review"),
    Endpoint("audit:log", "get", "audit.review", htmx=True),
    Endpoint("audit:event", "get", "audit.review", url_kwargs=_event),
    Endpoint("audit:export-csv", "get", "audit.export"),
    Endpoint("audit:export-jsonl", "get", "audit.export"),
    Endpoint("audit:verify", "post", "audit.verify"),
]


def _interrupted_job_of(world: World, starter: str) -> Job:
    api_key = ApiKey.objects.create(
        owner=world.members[starter].user, label=f"{starter} key", last_four="wxyz"
    )
    return Job.objects.create(
        team=world.team,
        kind=IMPORT_ALL,
        scope=f"key:{api_key.pk}",
        api_key=api_key,
        created_by=world.members[starter].user,
        state=Job.State.INTERRUPTED,
    )


@pytest.mark.parametrize("url_name", ["jobs:job-cancel", "jobs:job-resume"])
@pytest.mark.parametrize(
    ("actor", "starter", "allowed"),
    [
        (Role.EDITOR, Role.EDITOR, True),
        (Role.EDITOR, Role.ADMIN, False),
        (Role.ADMIN, Role.EDITOR, True),
        (Role.OWNER, Role.ADMIN, True),
    ],
)
def test_a_job_is_cancelled_or_resumed_by_its_starter_or_admins(
    client: Client, url_name: str, actor: str, starter: str, allowed: bool
) -> None:
    """The object-level rule under the floor: an Editor acts on the jobs they started only."""
    world = build_world(_objects)
    job = _interrupted_job_of(world, starter)
    page = reverse("jobs:job-detail", args=[world.team.slug, job.pk])
    client.force_login(world.members[actor].user)
    shown = client.get(page).content.decode()
    button = "Resume" if url_name == "jobs:job-resume" else "Cancel job"
    assert (button in shown) is allowed
    response = client.post(reverse(url_name, args=[world.team.slug, job.pk]))
    job.refresh_from_db()
    action = "job.resume" if url_name == "jobs:job-resume" else "job.cancel"
    denied = AuditEvent.objects.filter(outcome=Outcome.DENIED)
    if allowed:
        assert response.status_code == 302 and job.state != Job.State.INTERRUPTED
        assert not denied.exists()
    else:
        assert response.status_code == 403 and job.state == Job.State.INTERRUPTED
        assert "who started this job" in response.content.decode()
        assert [(event.action, event.target_id) for event in denied] == [(action, str(job.pk))]


@pytest.mark.parametrize(("endpoint", "actor"), matrix_params(ENDPOINTS))
def test_job_bundle_and_audit_endpoints_role_matrix(
    client: Client, endpoint: Endpoint, actor: str
) -> None:
    check_access(client, build_world(_objects), endpoint, actor)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_job_bundle_and_audit_endpoints_two_factor_gate(client: Client, endpoint: Endpoint) -> None:
    check_two_factor_gate(client, build_world(_objects), endpoint)


def test_matrix_covers_every_job_bundle_and_audit_url() -> None:
    from characters import urls as characters_urls
    from jobs import urls as jobs_urls
    from review import urls as audit_urls

    named = {
        f"{module.app_name}:{pattern.name}"
        for module in (jobs_urls, audit_urls)
        for pattern in module.urlpatterns
    } | {f"bundles:{pattern.name}" for pattern in characters_urls.bundle_urlpatterns}
    assert named <= {endpoint.url_name for endpoint in ENDPOINTS}
