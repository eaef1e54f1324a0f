"""The team overview nudges members who will act on characters to add their own API key."""

from __future__ import annotations

import pytest
from django.urls import reverse

from keys.models import ApiKey
from teams.models import Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

PROMPT = "Add your Convai API key."  # the first-run checklist's step


def prompted_on_overview(client, membership) -> bool:
    response = client.get(reverse("teams:overview", args=[membership.team.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    # The prompt links to the place where a key is added.
    assert (PROMPT in html) == (f'href="{reverse("keys:list")}#add-key"' in html)
    return PROMPT in html


@pytest.mark.parametrize(
    ("role", "has_key", "prompted"),
    [
        (Role.OWNER, False, True),
        (Role.EDITOR, False, True),
        (Role.EDITOR, True, False),
        (Role.VIEWER, False, False),
    ],
)
def test_api_key_prompt(client, role, has_key, prompted) -> None:
    membership = MembershipFactory.create(role=role)
    if has_key:
        ApiKey.objects.create(owner=membership.user, label="mine", last_four="abcd")
    client.force_login(membership.user)
    assert prompted_on_overview(client, membership) is prompted


def test_a_revoked_key_does_not_count(client) -> None:
    from django.utils import timezone

    membership = MembershipFactory.create(role=Role.EDITOR)
    ApiKey.objects.create(
        owner=membership.user, label="old", last_four="abcd", revoked_at=timezone.now()
    )
    client.force_login(membership.user)
    assert prompted_on_overview(client, membership) is True
