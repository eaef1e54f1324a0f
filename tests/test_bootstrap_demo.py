"""`make run`'s demo bootstrap: a login, a team and a working, verified sandbox key."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from audit.models import AuditEvent
from characters.management.commands.bootstrap_demo import DEMO_CHARACTERS
from keys.models import ApiKey
from keys.services import client_for
from teams.models import Membership, Role

DEMO_PASSWORD = "demo-password-for-tests-1"


@pytest.fixture
def demo_env(monkeypatch, settings) -> None:
    monkeypatch.setenv("CONVAI_ADMIN_DEMO_PASSWORD", DEMO_PASSWORD)
    settings.CONVAI_SANDBOX = True


def run(url: str = "http://127.0.0.1:8000/") -> str:
    out = StringIO()
    call_command("bootstrap_demo", "--url", url, stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_creates_a_demo_owner_with_a_verified_key_that_works(
    demo_env, live_server, settings
) -> None:
    output = run("http://127.0.0.1:8123/")
    user = User.objects.get(username="demo")
    assert user.check_password(DEMO_PASSWORD)
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    # The team was made by the same service as everyone's, and so is in the audit trail.
    created = AuditEvent.objects.get(action="team.created")
    assert (created.team, created.actor, created.origin) == (
        membership.team,
        user,
        "command bootstrap_demo",
    )
    api_key = ApiKey.objects.get(owner=user)
    assert api_key.verified_at is not None
    assert AuditEvent.objects.filter(action="api_key.verified", target_id=str(api_key.pk)).exists()
    assert "http://127.0.0.1:8123/" in output
    assert "demo" in output and DEMO_PASSWORD in output
    # The key really is a sandbox key: the sandbox accepts it over HTTP.
    settings.CONVAI_API_BASE_URL = f"{live_server.url}/sandbox"
    listed = client_for(api_key).list_characters()
    assert sorted(c.character_name for c in listed) == sorted(name for name, *_ in DEMO_CHARACTERS)


@pytest.mark.django_db
def test_running_again_keeps_everything_and_adds_nothing(demo_env) -> None:
    run()
    user = User.objects.get(username="demo")
    user.set_password("changed-by-the-user-7")
    user.save()
    events = AuditEvent.objects.count()
    run()
    assert AuditEvent.objects.count() == events  # nothing was done, so nothing recorded
    assert User.objects.filter(username="demo").count() == 1
    assert Membership.objects.filter(user=user).count() == 1
    assert ApiKey.objects.filter(owner=user).count() == 1
    user.refresh_from_db()
    assert user.check_password("changed-by-the-user-7")


@pytest.mark.django_db
def test_refuses_without_the_sandbox(demo_env, settings) -> None:
    settings.CONVAI_SANDBOX = False
    with pytest.raises(CommandError, match="CONVAI_SANDBOX"):
        run()
    assert not User.objects.filter(username="demo").exists()
