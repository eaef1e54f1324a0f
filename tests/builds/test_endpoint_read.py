"""The token endpoint's read (builds.selectors.build_for_endpoint) runs SQL compiled once per
process: it must give exactly what the ORM query it was compiled from gives, in every state
the endpoint tells apart, in one query."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from builds import selectors
from builds.models import Build
from builds.services import Issued
from keys.models import ApiKey
from teams.models import Membership, Team

pytestmark = pytest.mark.django_db(transaction=True)


def _fields(instance: Model | None) -> dict[str, Any] | None:
    if instance is None:
        return None
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def _as_read(build: Build | None) -> dict[str, Any] | None:
    if build is None:
        return None
    return {
        "build": _fields(build),
        "team": _fields(build.team),
        "api_key": _fields(build.api_key),
        "key_usable": build.key_usable,  # type: ignore[attr-defined]
    }


def _orm(build_id: Any) -> Build | None:
    return selectors._endpoint_builds().filter(pk=build_id).first()


def _check(build_id: Any) -> dict[str, Any] | None:
    with CaptureQueriesContext(connection) as captured:
        fast = selectors.build_for_endpoint(build_id)
    assert len(captured.captured_queries) == 1
    assert _as_read(fast) == _as_read(_orm(build_id))
    return _as_read(fast)


def _usable(issued: Issued) -> bool:
    read = _check(issued.build.pk)
    assert read is not None
    return bool(read["key_usable"])


def test_a_live_build_reads_as_the_orm_reads_it(issued: Issued) -> None:
    read = _check(issued.build.pk)
    assert read is not None
    assert read["key_usable"] is True
    assert read["build"]["allowed_origins"] == issued.build.allowed_origins
    assert read["api_key"]["ciphertext"]  # the key the mint opens


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda b: ApiKey.objects.filter(pk=b.api_key_id).update(revoked_at=timezone.now()),
            id="key revoked",
        ),
        pytest.param(
            lambda b: ApiKey.objects.filter(pk=b.api_key_id).update(verified_at=None),
            id="key unverified",
        ),
        pytest.param(
            lambda b: Membership.objects.filter(
                team_id=b.team_id, user_id=b.api_key.owner_id
            ).delete(),
            id="owner left the team",
        ),
        pytest.param(
            lambda b: Build.objects.filter(pk=b.pk).update(api_key=None), id="no key bound"
        ),
    ],
)
def test_a_key_that_no_longer_mints_reads_as_the_orm_reads_it(
    issued: Issued, change: Callable[[Build], object]
) -> None:
    assert _usable(issued)
    change(issued.build)
    assert not _usable(issued)


def test_build_and_team_states_read_as_the_orm_reads_them(issued: Issued) -> None:
    now = timezone.now()
    Team.objects.filter(pk=issued.build.team_id).update(archived_at=now)
    Build.objects.filter(pk=issued.build.pk).update(revoked_at=now, expires_at=now)
    read = _check(issued.build.pk)
    assert read is not None
    assert read["team"]["archived_at"] == now
    assert read["build"]["revoked_at"] == read["build"]["expires_at"] == now


def test_an_unknown_build_reads_as_nothing(issued: Issued) -> None:
    assert _check(uuid4()) is None
