"""The same key cannot be added twice by one member: a keyed fingerprint (HMAC-SHA256 under a
server secret) finds it without decrypting every stored key. Across members it is allowed (the
same Convai account's key, held by two people). Existing rows are fingerprinted by the
migration; `fingerprint_api_keys` recomputes after the secret changes."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from keys import crypto
from keys import services as key_services
from keys.models import ApiKey, encryption_context_for
from keys.services import DuplicateApiKey, add_api_key, revoke_api_key
from keys.upkeep import fill_fingerprints, rotate_api_keys
from tests.keys.support import (
    UNREACHABLE,
    assert_logs_clean,
    new_user,
)
from tests.support.secrets import assert_secret_absent, audit_text

URL = reverse("keys:list")


def add(user: Any, raw: str, label: str = "Studio") -> ApiKey:
    return add_api_key(actor=user, label=label, raw_key=raw, skip_verification=True)


# --- the fingerprint ----------------------------------------------------------------------------


def test_a_fingerprint_is_keyed_stable_and_says_nothing_of_the_key(settings: Any) -> None:
    raw = secrets.token_hex(16)
    value = crypto.fingerprint(raw)
    assert value == crypto.fingerprint(raw) and len(value) == 64
    assert value != crypto.fingerprint(secrets.token_hex(16))
    assert value != hashlib.sha256(raw.encode()).hexdigest()  # not guessable without the secret
    assert_secret_absent(value, raw)
    settings.KEY_FINGERPRINT_SECRET = "a-dedicated-secret"
    assert crypto.fingerprint(raw) != value


def test_the_fingerprint_does_not_follow_the_encryption_keyring(settings: Any) -> None:
    raw = secrets.token_hex(16)
    before = crypto.fingerprint(raw)
    settings.ENCRYPTION_KEYS = f"other:{base64.b64encode(os.urandom(32)).decode()}"
    assert crypto.fingerprint(raw) == before


# --- adding -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_adding_the_same_key_again_is_a_form_error_naming_the_first(
    client: Client, settings: Any, all_logs: Any
) -> None:
    """Refused before any Convai call: with Convai unreachable, the answer is still "you
    already added it", not "could not be verified"."""
    user = new_user()
    raw = secrets.token_hex(16)
    add(user, raw, "Studio production")
    settings.CONVAI_API_BASE_URL = UNREACHABLE
    client.force_login(user)

    response = client.post(URL, {"label": "Again", "key": raw})

    assert response.status_code == 200
    errors = response.context["form"].errors["key"]
    assert errors == [
        f"You already added this key as “Studio production” (…{raw[-4:]}). Use that one; to "
        "store it under another label, revoke it first."
    ]
    page = response.content.decode()
    assert "Studio production" in page and 'value="Again"' in page
    assert_secret_absent(page, raw)
    assert ApiKey.objects.filter(owner=user).count() == 1
    refusal = AuditEvent.objects.get(action="api_key.added", outcome="failure")
    assert refusal.details == {
        "label": "Again",
        "last_four": raw[-4:],
        "verified": False,
        "reason": "already added",
    }
    fingerprint = ApiKey.objects.get().fingerprint
    assert fingerprint not in audit_text()
    assert fingerprint not in all_logs.text
    assert_secret_absent(audit_text(), raw)
    assert_logs_clean(all_logs, raw)


@pytest.mark.django_db
def test_surrounding_spaces_do_not_make_it_another_key() -> None:
    user = new_user()
    raw = secrets.token_hex(16)
    add(user, raw)
    with pytest.raises(DuplicateApiKey):
        add(user, f"  {raw}\n", "Other label")


@pytest.mark.django_db
def test_two_members_may_add_the_same_key() -> None:
    """The same Convai account's key held by two people of a studio: each has their own row,
    their own revoke; refusing would only make one depend on the other."""
    raw = secrets.token_hex(16)
    first, second = add(new_user(), raw), add(new_user(), raw)
    assert first.fingerprint == second.fingerprint != ""


@pytest.mark.django_db
def test_a_revoked_key_can_be_added_again() -> None:
    user = new_user()
    raw = secrets.token_hex(16)
    old = add(user, raw)
    revoke_api_key(actor=user, api_key_id=old.pk)
    old.refresh_from_db()
    assert old.fingerprint == ""  # wiped with the ciphertext
    again = add(user, raw, "Studio again")
    assert again.fingerprint == crypto.fingerprint(raw)


@pytest.mark.django_db
def test_a_double_submitted_form_stores_the_key_once(monkeypatch: Any) -> None:
    """Both requests pass the look-up before either saved; the database constraint refuses
    the second, which then says which key it duplicates."""
    user = new_user()
    raw = secrets.token_hex(16)
    first = add(user, raw)
    real_held_copy = key_services._held_copy
    calls: list[int] = []

    def not_saved_yet(owner: Any, fingerprint: str) -> ApiKey | None:
        calls.append(1)
        return None if len(calls) == 1 else real_held_copy(owner, fingerprint)

    monkeypatch.setattr(key_services, "_held_copy", not_saved_yet)
    with pytest.raises(DuplicateApiKey) as refused:
        add(user, raw, "Twin")
    assert f"“{first.label}”" in refused.value.message
    assert ApiKey.objects.filter(owner=user).count() == 1
    assert AuditEvent.objects.filter(action="api_key.added", outcome="success").count() == 1
    assert AuditEvent.objects.filter(action="api_key.added", outcome="failure").count() == 1


@pytest.mark.django_db
def test_rotating_the_encryption_keys_keeps_finding_duplicates(settings: Any) -> None:
    user = new_user()
    raw = secrets.token_hex(16)
    add(user, raw)
    active = settings.ENCRYPTION_KEYS
    settings.ENCRYPTION_KEYS = f"next:{base64.b64encode(os.urandom(32)).decode()},{active}"
    rotate_api_keys()
    assert ApiKey.objects.get().encryption_key_id == "next"
    with pytest.raises(DuplicateApiKey):
        add(user, raw, "Again")


# --- filling fingerprints -----------------------------------------------------------------------


@pytest.mark.django_db
def test_fill_fingerprints_reads_each_key_once_and_keeps_the_oldest_of_a_pair() -> None:
    user = new_user()
    raw = secrets.token_hex(16)
    oldest = add(user, raw, "Oldest")
    ApiKey.objects.update(fingerprint="")
    later = add(user, raw, "Later copy")  # possible before fingerprints existed
    ApiKey.objects.update(fingerprint="")
    other = add(new_user(), secrets.token_hex(16), "Other")
    ApiKey.objects.filter(pk=other.pk).update(ciphertext=other.ciphertext[:-8] + "AAAAAAA=")
    ApiKey.objects.filter(pk=other.pk).update(fingerprint="")

    result = fill_fingerprints()

    assert (result.filled, result.duplicates, result.unreadable) == (1, 1, 1)
    oldest.refresh_from_db()
    later.refresh_from_db()
    assert oldest.fingerprint == crypto.fingerprint(raw)
    assert later.fingerprint == ""
    with pytest.raises(DuplicateApiKey):
        add(user, raw, "Third")


@pytest.mark.django_db
def test_after_the_secret_changes_the_command_recomputes_every_fingerprint(
    settings: Any,
) -> None:
    user = new_user()
    raw = secrets.token_hex(16)
    add(user, raw)
    settings.KEY_FINGERPRINT_SECRET = "rotated-dedicated-secret"
    assert add(user, raw, "Not found: stale fingerprint").pk  # the reason to run the command
    ApiKey.objects.filter(label="Not found: stale fingerprint").delete()

    call_command("fingerprint_api_keys", "--all", stdout=open(os.devnull, "w"))  # noqa: SIM115

    assert ApiKey.objects.get().fingerprint == crypto.fingerprint(raw)
    with pytest.raises(DuplicateApiKey):
        add(user, raw, "Again")


@pytest.mark.django_db(transaction=True)
def test_the_migration_fingerprints_existing_keys() -> None:
    """Rows stored before fingerprints existed get theirs when the migration runs."""
    executor = MigrationExecutor(connection)
    before = [("keys", "0002_account_usage")]
    latest = executor.loader.graph.leaf_nodes()  # every app: rolling keys back unapplied others
    executor.migrate(before)
    try:
        old_apps = executor.loader.project_state(before).apps
        OldApiKey = old_apps.get_model("keys", "ApiKey")
        user = new_user()
        raw = secrets.token_hex(16)
        row = OldApiKey.objects.create(owner_id=user.pk, label="Before", last_four=raw[-4:])
        sealed = crypto.encrypt(raw, associated_data=encryption_context_for(user.pk, row.pk))
        OldApiKey.objects.filter(pk=row.pk).update(ciphertext=sealed)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    assert ApiKey.objects.get(pk=row.pk).fingerprint == crypto.fingerprint(raw)
