"""Personal Convai API keys, end to end: add (verified against the sandbox over real HTTP),
list, verify, revoke, and use through `client_for`. The plaintext key must never reach a
page, a log line, an audit event, dumpdata output, or the database column."""

from __future__ import annotations

import io
import secrets
import sys
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.signals import got_request_exception
from django.db import connection
from django.http import HttpRequest
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from accounts.models import User
from audit.models import AuditEvent
from keys import services as key_services
from keys.models import ApiKey
from keys.services import add_api_key, client_for, revoke_api_key
from sandbox.services import revoke_sandbox_keys
from tests.keys.support import (
    UNREACHABLE,
    assert_logs_clean,
    new_user,
    raw_column,
)
from tests.support.secrets import assert_secret_absent, audit_text

URL = reverse("keys:list")


# --- access -----------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db: None) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert client.post(URL, {"label": "x", "key": "y" * 32}).status_code == 302
    assert not ApiKey.objects.exists()


def test_empty_state_explains_what_a_key_is_for(member: Client) -> None:
    response = member.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "No API keys yet" in page
    assert "convai.com" in page
    assert 'type="password"' in page


def test_another_members_key_does_not_exist_for_you(member: Client, user: User) -> None:
    other = add_api_key(
        actor=new_user(), label="theirs", raw_key=secrets.token_hex(16), skip_verification=True
    )
    for url in (
        reverse("keys:revoke", args=[other.pk]),
        reverse("keys:verify", args=[other.pk]),
    ):
        assert member.post(url).status_code == 404
    assert member.get(reverse("keys:revoke", args=[other.pk])).status_code == 404
    assert "theirs" not in member.get(URL).content.decode()
    other.refresh_from_db()
    assert other.is_active and other.ciphertext
    with pytest.raises(key_services.ApiKeyNotFound):
        revoke_api_key(actor=user, api_key_id=other.pk)


# --- adding -----------------------------------------------------------------------------


def test_adding_a_valid_key_stores_only_ciphertext(
    member: Client, user: User, sandbox_key: str, settings, all_logs
) -> None:
    response = member.post(URL, {"label": "Studio production", "key": sandbox_key}, follow=True)

    # Lands on the flash message, not on the add-key form the request came from.
    assert response.redirect_chain == [(URL + "#messages", 302)]
    page = response.content.decode()
    assert "Convai accepted" in page and "Studio production" in page
    assert sandbox_key[-4:] in page
    assert_secret_absent(page, sandbox_key)

    api_key = ApiKey.objects.get(owner=user)
    assert api_key.verified_at is not None and api_key.last_four == sandbox_key[-4:]
    ciphertext, key_id = raw_column(api_key.pk)
    active = settings.ENCRYPTION_KEYS.split(":", 1)[0]
    assert key_id == active and ciphertext.startswith(f"v1:{active}:")
    assert_secret_absent(ciphertext, sandbox_key)
    assert key_services.reveal(api_key) == sandbox_key

    event = AuditEvent.objects.get(action="api_key.added")
    assert event.outcome == "success" and event.team is None and event.actor == user
    assert event.details == {
        "label": "Studio production",
        "last_four": sandbox_key[-4:],
        "verified": True,
        "account_name": api_key.account_name,
        "account_email": api_key.account_email,
        "plan": "Free",
    }
    assert api_key.account_name.startswith("api-keys-test-")
    assert_secret_absent(audit_text(), sandbox_key)
    assert_logs_clean(all_logs, sandbox_key)


def test_a_key_convai_rejects_is_not_saved(member: Client, sandbox: str, all_logs) -> None:
    bogus = secrets.token_hex(16)
    response = member.post(URL, {"label": "Typo", "key": bogus})

    assert response.status_code == 200
    page = response.content.decode()
    assert "Convai rejected this key" in page
    assert response.context["form"].errors["key"]
    assert 'value="Typo"' in page  # the label is kept, the key is not
    assert "Save without verifying" not in page
    assert_secret_absent(page, bogus)
    assert not ApiKey.objects.exists()

    event = AuditEvent.objects.get(action="api_key.added")
    assert event.outcome == "failure"
    assert event.details["reason"] == "rejected by Convai"
    assert_secret_absent(audit_text(), bogus)
    assert_logs_clean(all_logs, bogus)


def test_unreachable_convai_offers_to_save_unverified(
    member: Client, user: User, settings, all_logs
) -> None:
    settings.CONVAI_API_BASE_URL = UNREACHABLE
    raw = secrets.token_hex(16)

    response = member.post(URL, {"label": "Offline", "key": raw})
    page = response.content.decode()
    assert response.status_code == 200
    assert "could not be verified" in page and "Convai could not be reached" in page
    assert 'name="save_unverified"' in page
    assert_secret_absent(page, raw)
    assert not ApiKey.objects.exists()
    assert AuditEvent.objects.get(action="api_key.added").details["reason"] == (
        "Convai unavailable"
    )

    response = member.post(
        URL, {"label": "Offline", "key": raw, "save_unverified": "1"}, follow=True
    )
    page = response.content.decode()
    assert "without verifying" in page and "Not verified" in page
    assert_secret_absent(page, raw)
    api_key = ApiKey.objects.get(owner=user)
    assert api_key.verified_at is None
    assert key_services.reveal(api_key) == raw
    added = AuditEvent.objects.filter(action="api_key.added", outcome="success").get()
    assert added.details["verified"] is False
    assert_secret_absent(audit_text(), raw)
    assert_logs_clean(all_logs, raw)


def test_the_key_is_never_rendered_back_after_a_form_error(member: Client, user: User) -> None:
    add_api_key(actor=user, label="Taken", raw_key=secrets.token_hex(16), skip_verification=True)
    raw = secrets.token_hex(16)
    response = member.post(URL, {"label": "taken", "key": raw})
    page = response.content.decode()
    assert "already have a key with this label" in page
    assert "enter it again" in page
    assert_secret_absent(page, raw)
    assert ApiKey.objects.count() == 1

    for bad in ("short", "has spaces inside 0123456789"):
        page = member.post(URL, {"label": "New", "key": bad}).content.decode()
        assert bad not in page
    assert ApiKey.objects.count() == 1


def test_a_missing_keyring_is_a_clear_message_not_a_crash(member: Client, settings) -> None:
    settings.ENCRYPTION_KEYS = ""
    raw = secrets.token_hex(16)
    response = member.post(URL, {"label": "Nowhere", "key": raw, "save_unverified": "1"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "encryption keyring is not set up" in page
    assert_secret_absent(page, raw)
    assert not ApiKey.objects.exists()


def test_the_key_post_parameter_is_hidden_from_error_reports(member: Client) -> None:
    raw = secrets.token_hex(16)
    response = member.post(URL, {"label": "", "key": raw})
    shown = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert shown["key"] != raw and set(shown["key"]) == {"*"}


def test_a_crash_while_saving_leaks_no_key_into_the_error_page_or_report(
    user: User, settings, monkeypatch, all_logs
) -> None:
    """The report Django mails to ADMINS includes every frame's locals and the POST data:
    the views and services that hold a key hide them (sensitive_variables/post_parameters)."""
    settings.CONVAI_API_BASE_URL = UNREACHABLE

    def explode(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk on fire")

    reports: list[str] = []

    def report(sender: object, request: HttpRequest, **kwargs: object) -> None:
        reporter = ExceptionReporter(request, *sys.exc_info())
        reports.extend([reporter.get_traceback_text(), reporter.get_traceback_html()])

    monkeypatch.setattr(key_services.crypto, "encrypt", explode)
    got_request_exception.connect(report)
    try:
        crashing = Client(raise_request_exception=False)
        crashing.force_login(user)
        raw = secrets.token_hex(16)
        response = crashing.post(URL, {"label": "Boom", "key": raw, "save_unverified": "1"})
    finally:
        got_request_exception.disconnect(report)

    assert response.status_code == 500
    assert_secret_absent(response.content.decode(), raw)
    assert reports and "disk on fire" in reports[0] and "raw_key" in reports[0]
    for text in reports:
        assert_secret_absent(text, raw)
        for entry in settings.ENCRYPTION_KEYS.split(","):
            assert entry.split(":", 1)[1] not in text
    assert_logs_clean(all_logs, raw)
    assert not ApiKey.objects.exists()


# --- listing ----------------------------------------------------------------------------


def test_list_shows_label_last_four_and_times(member: Client, user: User) -> None:
    raw = secrets.token_hex(16)
    api_key = add_api_key(actor=user, label="Writers room", raw_key=raw, skip_verification=True)
    used = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=used, verified_at=used)
    revoked = add_api_key(
        actor=user, label="Old one", raw_key=secrets.token_hex(16), skip_verification=True
    )
    revoke_api_key(actor=user, api_key_id=revoked.pk)

    page = member.get(URL).content.decode()
    assert "Writers room" in page and f"…{raw[-4:]}" in page
    assert page.count(f'datetime="{used.isoformat()}"') == 2  # last verified, last used
    assert f'datetime="{api_key.created_at.isoformat()}"' in page
    assert "Not verified" not in page and "Never" not in page
    assert "Old one" not in page
    assert "No API keys yet" not in page
    assert_secret_absent(page, raw)


def test_listing_costs_the_same_queries_for_one_key_or_many(member: Client, user: User) -> None:
    add_api_key(actor=user, label="key 0", raw_key=secrets.token_hex(16), skip_verification=True)
    member.get(URL)  # warm the session
    with CaptureQueriesContext(connection) as one:
        assert member.get(URL).status_code == 200
    for n in range(1, 6):
        add_api_key(
            actor=user, label=f"key {n}", raw_key=secrets.token_hex(16), skip_verification=True
        )
    with CaptureQueriesContext(connection) as many:
        page = member.get(URL).content.decode()
    assert page.count("<tr>") == 7  # header + 6 keys
    assert len(many) == len(one)
    assert len(one) <= 6


# --- verifying later --------------------------------------------------------------------


def test_verify_checks_an_unverified_key_with_convai(
    member: Client, user: User, sandbox_key: str
) -> None:
    api_key = add_api_key(actor=user, label="Later", raw_key=sandbox_key, skip_verification=True)
    response = member.post(reverse("keys:verify", args=[api_key.pk]), follow=True)
    page = response.content.decode()
    assert "Convai accepted" in page
    assert_secret_absent(page, sandbox_key)
    api_key.refresh_from_db()
    assert api_key.verified_at is not None
    event = AuditEvent.objects.get(action="api_key.verified")
    assert event.outcome == "success" and str(api_key.pk) == event.target_id


def test_verify_reports_a_key_convai_no_longer_accepts(
    member: Client, user: User, sandbox_key: str
) -> None:
    api_key = add_api_key(
        actor=user, label="Deleted in Convai", raw_key=sandbox_key, skip_verification=True
    )
    revoke_sandbox_keys("api-keys-test")
    response = member.post(reverse("keys:verify", args=[api_key.pk]), follow=True)
    page = response.content.decode()
    assert "Convai rejected this key" in page
    assert_secret_absent(page, sandbox_key)
    api_key.refresh_from_db()
    assert api_key.verified_at is None
    event = AuditEvent.objects.get(action="api_key.verified")
    assert event.outcome == "failure" and event.details["reason"] == "rejected by Convai"


def test_verify_explains_a_key_the_keyring_can_no_longer_read(
    member: Client, user: User, settings
) -> None:
    api_key = add_api_key(
        actor=user, label="Orphan", raw_key=secrets.token_hex(16), skip_verification=True
    )
    settings.ENCRYPTION_KEYS = "other:" + "A" * 43 + "="
    response = member.post(reverse("keys:verify", args=[api_key.pk]), follow=True)
    assert response.status_code == 200
    assert "can no longer be read" in response.content.decode()


# --- revoking ---------------------------------------------------------------------------


def test_revoke_confirmation_is_a_page_or_a_dialog_fragment(member: Client, user: User) -> None:
    raw = secrets.token_hex(16)
    api_key = add_api_key(actor=user, label="To go", raw_key=raw, skip_verification=True)
    url = reverse("keys:revoke", args=[api_key.pk])

    list_page = member.get(URL).content.decode()
    assert f'hx-get="{url}"' in list_page and 'hx-target="#modal-content"' in list_page
    assert f'href="{url}"' in list_page

    full = member.get(url).content.decode()
    assert "<html" in full and "Revoke “To go”?" in full
    fragment = member.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and 'id="modal-title"' in fragment
    assert f'action="{url}"' in fragment
    for page in (list_page, full, fragment):
        assert_secret_absent(page, raw)
    assert ApiKey.objects.get(pk=api_key.pk).is_active  # GET changes nothing


def test_revoke_wipes_the_ciphertext(member: Client, user: User, all_logs) -> None:
    raw = secrets.token_hex(16)
    api_key = add_api_key(actor=user, label="To go", raw_key=raw, skip_verification=True)
    url = reverse("keys:revoke", args=[api_key.pk])

    response = member.post(url, follow=True)
    page = response.content.decode()
    assert "Revoked “To go”" in page
    assert_secret_absent(page, raw)
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert raw_column(api_key.pk)[0] == ""
    event = AuditEvent.objects.get(action="api_key.revoked")
    assert event.details == {"label": "To go", "last_four": raw[-4:]}

    assert member.post(url).status_code == 302  # a double submit is harmless
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1
    assert member.get(url).status_code == 404
    with pytest.raises(key_services.ApiKeyUnusable):
        client_for(api_key)
    assert_secret_absent(audit_text(), raw)
    assert_logs_clean(all_logs, raw)


# --- using a stored key ------------------------------------------------------------------


def test_client_for_calls_convai_with_the_stored_key(user: User, sandbox_key: str) -> None:
    api_key = add_api_key(actor=user, label="Production", raw_key=sandbox_key)
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.last_used_at is None

    convai = client_for(stored)
    assert convai.list_characters() == []
    assert sandbox_key not in repr(convai)
    stored.refresh_from_db()
    assert stored.last_used_at is not None


def test_client_for_writes_last_used_at_at_most_once_a_minute(user: User) -> None:
    api_key = add_api_key(
        actor=user, label="Busy", raw_key=secrets.token_hex(16), skip_verification=True
    )
    recent = timezone.now() - timedelta(seconds=30)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=recent)
    client_for(ApiKey.objects.get(pk=api_key.pk))
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == recent  # not written again
    older = timezone.now() - key_services.LAST_USED_PRECISION
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=older)
    client_for(ApiKey.objects.get(pk=api_key.pk))
    used = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert used is not None and used > older


def test_client_for_refuses_a_transplanted_ciphertext(user: User) -> None:
    mine = add_api_key(
        actor=user, label="mine", raw_key=secrets.token_hex(16), skip_verification=True
    )
    theirs = add_api_key(
        actor=new_user(), label="theirs", raw_key=secrets.token_hex(16), skip_verification=True
    )
    ApiKey.objects.filter(pk=mine.pk).update(ciphertext=theirs.ciphertext)
    with pytest.raises(key_services.ApiKeyUnusable) as excinfo:
        client_for(ApiKey.objects.get(pk=mine.pk), actor=user)
    assert "was altered or does not belong to this record" in excinfo.value.message
    assert theirs.ciphertext.split(":")[2] not in str(excinfo.value)
    event = AuditEvent.objects.get(action="api_key.used")
    assert (event.outcome, event.actor, event.target_id) == ("failure", user, str(mine.pk))
    assert ApiKey.objects.get(pk=mine.pk).last_used_at is None


def test_dumpdata_holds_ciphertext_only(user: User) -> None:
    raw = secrets.token_hex(16)
    add_api_key(actor=user, label="dumped", raw_key=raw, skip_verification=True)
    out = io.StringIO()
    call_command("dumpdata", "keys.ApiKey", stdout=out)
    dumped = out.getvalue()
    assert "dumped" in dumped and "v1:" in dumped
    assert_secret_absent(dumped, raw)
