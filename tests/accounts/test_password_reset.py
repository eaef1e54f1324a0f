"""Password reset by email (allauth): the mail (read from Django's locmem outbox), the key
moved out of the URL into the session after the first GET (so access logs and Referer headers
never carry it again), the new password, the other sessions ended, and the events audited
without the key."""

from __future__ import annotations

import json
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts import services
from audit.models import AuditEvent
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mail_configured(settings) -> None:
    settings.EMAIL_ENABLED = True  # EMAIL_URL set; Django's test runner keeps mail in mail.outbox


NEW = "Reset long passphrase 7"


def ask_reset(client: Client, email: str):
    return client.post(reverse("account_reset_password"), {"email": email})


def reset_link() -> str:
    (message,) = mail.outbox
    match = re.search(r"https?://[^/\s]+(/\S+)", message.body)
    assert match, message.body
    return match.group(1)


def test_the_reset_mail_leads_to_a_new_password_and_the_key_leaves_the_url(client) -> None:
    user = UserFactory()
    response = ask_reset(client, user.email)
    assert response["Location"] == reverse("account_reset_password_done")
    link = reset_link()
    key = link.rstrip("/").rsplit("/", 1)[-1].split("-", 1)[1]  # <uid>-<key>
    assert mail.outbox[0].to == [user.email]
    assert mail.outbox[0].subject.startswith("[Convai Admin] ")
    # The first GET moves the key into the session and redirects to a URL without it.
    first = client.get(link)
    assert first.status_code == 302
    form_url = first["Location"]
    assert key not in form_url and form_url.endswith("-set-password/")
    page = client.get(form_url)
    assert page.status_code == 200
    assert key not in page.content.decode()
    done = client.post(form_url, {"password1": NEW, "password2": NEW})
    assert done["Location"] == reverse("account_reset_password_from_key_done")
    user.refresh_from_db()
    assert user.check_password(NEW)
    # The link works once.
    again = Client().get(link)
    assert again.status_code == 200 and b"This reset link does not work" in again.content
    audited = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert key not in audited and NEW not in audited
    actions = list(AuditEvent.objects.values_list("action", flat=True).order_by("id"))
    assert actions == [
        services.PASSWORD_RESET_REQUESTED,
        services.PASSWORD_RESET,
        services.SESSIONS_ENDED,
    ]


def test_a_reset_ends_every_session_of_the_account(client) -> None:
    user = UserFactory()
    laptop = Client()
    laptop.post(reverse("accounts:login"), {"login": user.username, "password": TEST_PASSWORD})
    assert laptop.get(reverse("accounts:sessions")).status_code == 200
    ask_reset(client, user.email)
    form_url = client.get(reset_link())["Location"]
    client.post(form_url, {"password1": NEW, "password2": NEW})
    assert laptop.get(reverse("accounts:sessions"))["Location"].startswith(
        reverse("accounts:login")
    )


def test_an_unknown_address_looks_the_same_and_sends_nothing(client) -> None:
    response = ask_reset(client, "nobody@example.test")
    assert response["Location"] == reverse("account_reset_password_done")
    assert mail.outbox == []
    assert not AuditEvent.objects.exists()


def test_a_bad_address_is_refused_with_what_was_typed_kept(client) -> None:
    response = ask_reset(client, "not-an-address")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="not-an-address"' in html
    assert "Enter a valid email address" in html


def test_reset_requests_are_rate_limited_per_address(client) -> None:
    user = UserFactory()
    for _ in range(3):
        ask_reset(client, user.email)
    assert len(mail.outbox) == 3
    refused = ask_reset(client, user.email)
    assert refused.status_code in (200, 429)
    assert len(mail.outbox) == 3


def test_a_weak_new_password_is_refused(client) -> None:
    user = UserFactory()
    ask_reset(client, user.email)
    form_url = client.get(reset_link())["Location"]
    response = client.post(form_url, {"password1": "short", "password2": "short"})
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)


def test_without_email_the_reset_page_says_who_can_help_and_sends_nothing(client, settings) -> None:
    settings.EMAIL_ENABLED = False
    user = UserFactory()
    assert (
        reverse("accounts:password-reset")
        not in client.get(reverse("accounts:login")).content.decode()
    )
    response = ask_reset(client, user.email)
    assert response.status_code == 200
    assert "Password reset is not set up here" in response.content.decode()
    assert mail.outbox == []
    assert not AuditEvent.objects.exists()


def test_the_reset_mail_goes_over_real_smtp_and_its_link_works(client, smtp_server) -> None:
    """Through Django's SMTP backend to the in-process SMTP server (tests/support/smtp.py), as
    production sends it."""
    user = UserFactory()
    ask_reset(client, user.email)
    [message] = smtp_server.messages
    assert smtp_server.recipients() == [[user.email]]
    assert message["Subject"].startswith("[Convai Admin] ")
    link = re.search(r"https?://[^/\s]+(/\S+)", smtp_server.body(message)).group(1)
    form_url = client.get(link)["Location"]
    assert client.post(form_url, {"password1": NEW, "password2": NEW}).status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW)
