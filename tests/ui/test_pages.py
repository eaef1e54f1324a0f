"""Page content that is easy to get wrong: the invitation link's copy button (rendered hidden
for app.js to show; the copying itself is tested in a browser, tests/e2e/test_ui_polish.py),
who sets roles on the overview, and the password rules on both password forms."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import password_validation
from django.test import Client
from django.urls import reverse

from teams.invitations import create_invitation
from teams.models import Membership, Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _signed_in(client: Client, role: str = Role.OWNER) -> Membership:
    membership = MembershipFactory.create(role=role)
    client.force_login(membership.user)
    return membership


def test_invitation_link_page_has_a_copy_button_that_needs_script(client: Client) -> None:
    membership = _signed_in(client)
    response = client.post(
        reverse("teams:invitation-create", args=[membership.team.slug]), {"role": "editor"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    # Rendered hidden: app.js shows it, so without script no button does nothing.
    assert (
        '<button class="btn btn-secondary" type="button" data-copy-target="#invitation-link" '
        "hidden>Copy link</button>"
    ) in html
    assert 'id="invitation-link"' in html and "data-select-on-focus" in html
    assert "data-copy-status" in html and 'aria-live="polite"' in html
    assert "Select the text" not in html


@pytest.mark.parametrize(
    ("role", "manages", "text"),
    [
        (Role.OWNER, True, "as an Owner you set everyone's role"),
        (Role.ADMIN, True, "you set Editors' and Viewers' roles; Owners set Admins and Owners"),
        (Role.EDITOR, False, "Your role is set by the team's Admins and Owners."),
        (Role.VIEWER, False, "Your role is set by the team's Admins and Owners."),
    ],
)
def test_overview_says_who_sets_roles_for_my_role(
    client: Client, role: str, manages: bool, text: str
) -> None:
    membership = _signed_in(client, role)
    html = client.get(reverse("teams:overview", args=[membership.team.slug])).content.decode()
    assert text in html
    assert "Roles are set by the team's admins and owners." not in html
    members_url = reverse("teams:members", args=[membership.team.slug])
    manage_link = f'<a href="{members_url}">Manage roles on the Members page</a>'
    assert (manage_link in html) is manages


HELP_BLOCK = re.compile(r'<div class="help" id="id_(\w+)_helptext">(.*?)</div>', re.DOTALL)


def _password_help(html: str, field: str) -> str:
    blocks = dict(HELP_BLOCK.findall(html))
    assert f'aria-describedby="id_{field}_helptext"' in html
    return " ".join(blocks[field].split())


def test_password_rules_read_the_same_on_sign_up_and_change_password(client: Client) -> None:
    inviter = MembershipFactory.create(role=Role.ADMIN)
    token = create_invitation(actor=inviter, role=Role.EDITOR).token
    signup = client.get(
        reverse("teams:invitation-accept", kwargs={"token": token}), follow=True
    ).content.decode()
    _signed_in(client)
    change = client.get(reverse("accounts:password-change")).content.decode()
    rules = _password_help(signup, "password1")
    assert rules == _password_help(change, "password1")
    assert rules.startswith("Your password must: <ul>")
    # The wording follows the configured validators: a new validator or another minimum
    # length must be reflected in includes/password_help.html.
    validators = password_validation.get_default_password_validators()
    assert sorted(type(v).__name__ for v in validators) == [
        "CommonPasswordValidator",
        "MinimumLengthValidator",
        "NumericPasswordValidator",
        "UserAttributeSimilarityValidator",
    ]
    minimum = next(
        v.min_length
        for v in validators
        if isinstance(v, password_validation.MinimumLengthValidator)
    )
    assert f"have at least {minimum} characters" in rules
