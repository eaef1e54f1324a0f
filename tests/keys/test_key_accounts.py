"""Keys that know their account: adding or verifying a key asks Convai (the live sandbox, over
real HTTP) `/user/user-api-usage`, stores whose account it is, its plan, renewal and quota (never
the key), shows them on the API keys page grouped by account, and refreshes them on request.
The fake transport stands in only for answers the sandbox cannot give (shapes Convai varies)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from keys import services as key_services
from keys.models import ApiKey
from keys.selectors import core_api_remaining, keys_by_account
from keys.services import add_api_key, client_for
from sandbox.models import SandboxAccount
from sandbox.services import (
    configure_sandbox_account,
    create_sandbox_key,
    revoke_sandbox_keys,
    set_fault,
)
from tests.convai.fake_http import install
from tests.keys.support import assert_logs_clean, new_user
from tests.support.secrets import assert_secret_absent, audit_text

URL = reverse("keys:list")
RENEWAL = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def studio(sandbox: str) -> SandboxAccount:
    """A sandbox account on a paid plan, part used."""
    return configure_sandbox_account(
        "Lighthouse Studio",
        email="lead@lighthouse.example.com",
        plan_name="Professional",
        renews_at=RENEWAL,
        limits={"interactions": 5000, "core-api": 20000, "pixel_streaming": 120},
        usage={"interactions": 1200, "core-api": 19000, "pixel_streaming": 30},
    )


def add(member: Client, label: str, raw_key: str) -> str:
    response = member.post(URL, {"label": label, "key": raw_key}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def card_of(page: str, account: str) -> str:
    """The HTML of the account card whose data-account is `account`."""
    match = re.search(
        rf'<section class="card account-card[^"]*"[^>]*data-account="{re.escape(account)}".*?'
        r"</section>",
        page,
        re.S,
    )
    assert match, f"no card for {account}"
    return match.group(0)


# --- adding and verifying store the account ----------------------------------------------


def test_adding_a_key_stores_its_account_plan_renewal_and_usage(
    member: Client, user: User, studio: SandboxAccount, all_logs
) -> None:
    raw = create_sandbox_key("writer", account=studio.name)
    page = add(member, "Studio production", raw)

    assert "belongs to the Convai account “Lighthouse Studio”" in page
    assert "Professional plan" in page
    api_key = ApiKey.objects.get(owner=user)
    assert (api_key.account_name, api_key.account_email, api_key.plan_name) == (
        "Lighthouse Studio",
        "lead@lighthouse.example.com",
        "Professional",
    )
    assert api_key.convai_account == "lead@lighthouse.example.com"
    assert api_key.plan_renews_at == RENEWAL
    assert api_key.usage_checked_at == api_key.verified_at is not None
    # Every metric the sandbox reports, its configured figures (the usage check is free).
    assert api_key.usage_metrics == {
        "interactions": {"limit": 5000, "usage": 1200},
        "core-api": {"limit": 20000, "usage": 19000},
        "provider_pool_1": {"limit": 10000, "usage": 0},
        "pixel_streaming": {"limit": 120, "usage": 30},
    }
    assert core_api_remaining(api_key) == 1000

    event = AuditEvent.objects.get(action="api_key.added")
    assert event.details == {
        "label": "Studio production",
        "last_four": raw[-4:],
        "verified": True,
        "account_name": "Lighthouse Studio",
        "account_email": "lead@lighthouse.example.com",
        "plan": "Professional",
    }
    assert_secret_absent(page, raw)
    assert_secret_absent(audit_text(), raw)
    assert_logs_clean(all_logs, raw)


def test_the_page_shows_the_account_its_plan_quota_bars_and_renewal(
    member: Client, studio: SandboxAccount
) -> None:
    raw = create_sandbox_key("writer", account=studio.name)
    add(member, "Studio production", raw)
    page = member.get(URL).content.decode()
    card = card_of(page, "lead@lighthouse.example.com")

    assert "Lighthouse Studio" in card and "lead@lighthouse.example.com" in card
    assert "Professional plan" in card
    assert f'datetime="{RENEWAL.isoformat()}"' in card and "31 Jan 2030" in card
    # Interactions: 1,200 of 5,000 = 24 %, a meter with its figures in words too.
    assert "<strong>1,200</strong> / 5,000" in card and "24 %" in card
    assert re.search(
        r'<meter class="quota-meter" min="0" max="5000" low="4000.0" high="4995.0" optimum="0" '
        r'value="1200" aria-label="Interactions: 1,200 of 5,000 used \(24 %\)">',
        card,
    )
    assert "3,800 left" in card
    # Core API: 19,000 of 20,000 is nearly used up.
    assert "<strong>19,000</strong> / 20,000" in card and "95 %" in card
    assert "quota-low" in card and "1,000 left</strong>: nearly used up" in card
    # The others are kept and shown, folded away.
    assert "Other quotas (2)" in card and "Pixel streaming" in card and "ElevenLabs voices" in card
    assert "Refresh usage" in card
    assert_secret_absent(page, raw)


def test_verifying_a_key_saved_unverified_learns_its_account(
    member: Client, user: User, studio: SandboxAccount
) -> None:
    raw = create_sandbox_key("writer", account=studio.name)
    api_key = add_api_key(actor=user, label="Later", raw_key=raw, skip_verification=True)
    assert not api_key.account_known
    page = member.get(URL).content.decode()
    assert "Account not known yet" in page

    response = member.post(reverse("keys:verify", args=[api_key.pk]), follow=True)
    page = response.content.decode()
    assert "belongs to the Convai account “Lighthouse Studio”" in page
    assert "Account not known yet" not in page
    api_key.refresh_from_db()
    assert api_key.account_name == "Lighthouse Studio" and api_key.plan_name == "Professional"
    assert api_key.verified_at == api_key.usage_checked_at is not None
    event = AuditEvent.objects.get(action="api_key.verified")
    assert event.outcome == "success"
    assert event.details["account_name"] == "Lighthouse Studio"
    assert event.details["account_email"] == "lead@lighthouse.example.com"
    assert event.details["plan"] == "Professional"
    assert event.details["usage"] == {
        "interactions": {"used": 1200, "limit": 5000},
        "core-api": {"used": 19000, "limit": 20000},
    }
    assert_secret_absent(page, raw)
    assert_secret_absent(audit_text(), raw)


# --- one account, several keys -------------------------------------------------------------


def test_two_keys_of_one_account_show_as_that_account(
    member: Client, user: User, studio: SandboxAccount
) -> None:
    writer = create_sandbox_key("writer", account=studio.name)
    engineer = create_sandbox_key("engineer", account=studio.name)
    own = create_sandbox_key("personal")  # an account of its own
    add(member, "Writers", writer)
    add(member, "Personal", own)
    add(member, "Engineering", engineer)

    keys = {k.label: k for k in ApiKey.objects.filter(owner=user)}
    assert keys["Writers"].convai_account == keys["Engineering"].convai_account
    assert keys["Personal"].convai_account not in ("", keys["Writers"].convai_account)

    page = member.get(URL).content.decode()
    assert page.count('class="card account-card"') == 2
    card = card_of(page, "lead@lighthouse.example.com")
    assert "Writers" in card and "Engineering" in card and "Personal" not in card
    assert "2 keys of this account" in card
    assert "1 key of this account" in card_of(page, keys["Personal"].convai_account)

    # Rebinding proposes the keys of the same account first, in their given order.
    ordered = keys_by_account(
        [keys["Personal"], keys["Engineering"], keys["Writers"]], account_of=keys["Writers"]
    )
    assert [k.label for k in ordered] == ["Engineering", "Writers", "Personal"]
    for raw in (writer, engineer, own):
        assert_secret_absent(page, raw)


# --- refreshing --------------------------------------------------------------------------


def test_refresh_usage_reads_the_accounts_figures_again_and_is_audited(
    member: Client, user: User, studio: SandboxAccount, all_logs
) -> None:
    raw = create_sandbox_key("writer", account=studio.name)
    add(member, "Studio production", raw)
    api_key = ApiKey.objects.get(owner=user)
    first_check = api_key.usage_checked_at

    # Time passes: the account moves to another plan, and the dashboard spends a core-API
    # call (a list counts against the quota in the sandbox, as on Convai).
    configure_sandbox_account(studio.name, plan_name="Enterprise", limits={"interactions": 50000})
    client_for(api_key).list_characters()

    response = member.post(reverse("keys:refresh-usage", args=[api_key.pk]), follow=True)
    page = response.content.decode()
    assert "Usage refreshed with “Studio production”" in page
    assert "Enterprise plan" in page and "<strong>19,001</strong> / 20,000" in page
    assert "<strong>1,200</strong> / 50,000" in page

    api_key.refresh_from_db()
    assert api_key.plan_name == "Enterprise"
    assert api_key.usage_metrics["core-api"] == {"limit": 20000, "usage": 19001}
    assert core_api_remaining(api_key) == 999
    assert first_check is not None and api_key.usage_checked_at is not None
    assert api_key.usage_checked_at > first_check

    event = AuditEvent.objects.get(action="api_key.usage_checked")
    assert event.outcome == "success" and event.actor == user
    assert event.target_id == str(api_key.pk)
    assert event.details == {
        "last_four": raw[-4:],
        "account_name": "Lighthouse Studio",
        "account_email": "lead@lighthouse.example.com",
        "plan": "Enterprise",
        "usage": {
            "interactions": {"used": 1200, "limit": 50000},
            "core-api": {"used": 19001, "limit": 20000},
        },
    }
    assert_secret_absent(page, raw)
    assert_secret_absent(audit_text(), raw)
    assert_logs_clean(all_logs, raw)


def test_refreshing_a_key_convai_no_longer_accepts_says_so_and_keeps_what_was_known(
    member: Client, user: User, studio: SandboxAccount
) -> None:
    raw = create_sandbox_key("writer", account=studio.name)
    add(member, "Studio production", raw)
    revoke_sandbox_keys("writer")
    api_key = ApiKey.objects.get(owner=user)

    response = member.post(reverse("keys:refresh-usage", args=[api_key.pk]), follow=True)
    page = response.content.decode()
    assert "Convai rejected this key" in page
    api_key.refresh_from_db()
    assert api_key.account_name == "Lighthouse Studio"  # unchanged
    event = AuditEvent.objects.get(action="api_key.usage_checked")
    assert event.outcome == "failure" and event.details["reason"] == "rejected by Convai"
    assert_secret_absent(page, raw)


def test_a_quota_used_up_reads_as_used_up(member: Client, studio: SandboxAccount) -> None:
    configure_sandbox_account(studio.name, usage={"interactions": 7000})
    add(member, "Studio production", create_sandbox_key("writer", account=studio.name))
    card = card_of(member.get(URL).content.decode(), "lead@lighthouse.example.com")
    assert "<strong>7,000</strong> / 5,000" in card and "100 %" in card
    assert "quota-out" in card and "Used up" in card


def test_refreshing_another_members_key_does_not_exist(member: Client, sandbox: str) -> None:
    theirs = add_api_key(actor=new_user(), label="theirs", raw_key=create_sandbox_key("them"))
    response = member.post(reverse("keys:refresh-usage", args=[theirs.pk]))
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="api_key.usage_checked").exists()
    assert member.get(reverse("keys:refresh-usage", args=[theirs.pk])).status_code == 405


# --- tolerant reading ---------------------------------------------------------------------


def test_an_account_with_no_email_or_renewal_is_named_and_shown_without_them(
    member: Client, user: User, studio: SandboxAccount
) -> None:
    SandboxAccount.objects.filter(pk=studio.pk).update(email="", renews_at=None)
    page = add(member, "Studio production", create_sandbox_key("writer", account=studio.name))
    assert "belongs to the Convai account “Lighthouse Studio”, Professional plan" in page
    api_key = ApiKey.objects.get(owner=user)
    assert api_key.account_email == "" and api_key.plan_renews_at is None
    assert api_key.convai_account == "Lighthouse Studio"
    card = card_of(member.get(URL).content.decode(), "Lighthouse Studio")
    assert "Renews" not in card and "Professional plan" in card


def test_an_unreadable_usage_answer_still_verifies_the_key_with_its_account_unknown(
    member: Client, user: User, studio: SandboxAccount, all_logs
) -> None:
    raw = create_sandbox_key("writer", account=studio.name)
    set_fault(key_label="writer", malformed=True)  # 200 with a truncated JSON body

    page = add(member, "Studio production", raw)
    assert "Convai accepted “Studio production”" in page
    assert "account could not be read, so it shows as unknown" in page
    api_key = ApiKey.objects.get(owner=user)
    assert api_key.verified_at is not None and not api_key.account_known
    assert api_key.usage_checked_at is None and api_key.usage_metrics == {}
    assert AuditEvent.objects.get(action="api_key.added").details["account"] == "unknown"

    page = member.get(URL).content.decode()
    assert "Account not known yet" in page and "Check account" in page
    assert "Refresh usage" not in page

    # Once the answer is readable again, "Check account" learns it.
    set_fault(key_label="writer")
    response = member.post(reverse("keys:refresh-usage", args=[api_key.pk]), follow=True)
    page = response.content.decode()
    assert "Lighthouse Studio" in page and "Account not known yet" not in page
    assert_secret_absent(page, raw)
    assert_secret_absent(audit_text(), raw)
    assert_logs_clean(all_logs, raw)


def test_an_unreadable_refresh_keeps_the_last_figures_and_says_so(
    member: Client, user: User, studio: SandboxAccount
) -> None:
    add(member, "Studio production", create_sandbox_key("writer", account=studio.name))
    api_key = ApiKey.objects.get(owner=user)
    checked = api_key.usage_checked_at
    set_fault(key_label="writer", malformed=True)

    response = member.post(reverse("keys:refresh-usage", args=[api_key.pk]), follow=True)
    page = response.content.decode()
    assert "could not be read; the figures shown are from the last check" in page
    api_key.refresh_from_db()
    assert api_key.usage_checked_at == checked and api_key.account_name == "Lighthouse Studio"
    event = AuditEvent.objects.get(action="api_key.usage_checked")
    assert event.outcome == "success" and event.details["usage"] == "unreadable"
    assert event.details["account_name"] == "Lighthouse Studio"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # The email in its other homes, no plan, no metrics.
        (
            {"usage": {"user_email": "Solo@Example.com"}},
            {"account_email": "Solo@Example.com", "convai_account": "solo@example.com"},
        ),
        ({"email": "top@example.com"}, {"account_email": "top@example.com"}),
        # Metrics as an object, one entry without a limit, one with garbage.
        (
            {
                "usage": {"user_name": "studio"},
                "usage_v2": {
                    "plan_name": "Indie",
                    "expiry_ts": "not a date",
                    "metrics": {
                        "interactions": {"usage_details": {"usage": 5}},
                        "core-api": {"usage_details": [{"limit": "100", "usage": "n/a"}]},
                    },
                },
            },
            {
                "account_name": "studio",
                "plan_name": "Indie",
                "plan_renews_at": None,
                "usage_metrics": {
                    "interactions": {"limit": None, "usage": 5},
                    "core-api": {"limit": 100, "usage": None},
                },
            },
        ),
        # Nothing at all that names the account: accepted, account unknown.
        ({}, {"convai_account": "", "usage_metrics": {}}),
    ],
)
def test_the_shapes_convai_varies_are_read_tolerantly(
    user: User, monkeypatch: pytest.MonkeyPatch, payload: dict[str, Any], expected: dict[str, Any]
) -> None:
    install(monkeypatch, [(200, payload)])
    api_key = add_api_key(actor=user, label="Odd", raw_key="k" * 32)
    assert api_key.verified_at is not None
    stored = ApiKey.objects.get(pk=api_key.pk)
    for field, value in expected.items():
        assert getattr(stored, field) == value, field
    assert stored.usage_checked_at is not None


def test_a_partial_answer_renders_without_bars_it_cannot_draw(
    member: Client, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        monkeypatch,
        [
            (
                200,
                {
                    "usage": {"user_name": "studio"},
                    "usage_v2": {
                        "metrics": [
                            {"id": "interactions", "usage_details": [{"usage": 5}]},
                            {"id": "core-api", "usage_details": []},
                        ]
                    },
                },
            )
        ],
    )
    add_api_key(actor=user, label="Odd", raw_key="k" * 32)
    card = card_of(member.get(URL).content.decode(), "studio")
    assert "Plan not reported" in card
    assert "<strong>5</strong> used · no limit reported" in card
    assert "Not reported" in card
    assert "<meter" not in card
    assert core_api_remaining(ApiKey.objects.get(owner=user)) is None


def test_hostile_account_text_is_escaped_and_clipped(
    member: Client, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "<script>alert(1)</script>" + "x" * 400
    install(
        monkeypatch,
        [(200, {"usage": {"user_name": name, "email": '"><img src=x onerror=alert(1)>'}})],
    )
    add_api_key(actor=user, label="Odd", raw_key="k" * 32)
    stored = ApiKey.objects.get(owner=user)
    assert len(stored.account_name) == 200
    page = member.get(URL).content.decode()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_usage_endpoint_convai_refuses_falls_back_to_the_list_check(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4xx other than 401 (e.g. the endpoint moved) says nothing about the key: the
    previous check, listing characters, decides; the account is then unknown."""
    adapter = install(monkeypatch, [(404, "<html>Not Found</html>"), (200, [])])
    api_key = add_api_key(actor=user, label="Fallback", raw_key="k" * 32)
    assert api_key.verified_at is not None and not api_key.account_known
    assert [r.path_url.rsplit("/", 2)[-2:] for r in adapter.sent] == [
        ["user", "user-api-usage"],
        ["character", "list"],
    ]


def test_a_rejected_key_on_the_fallback_is_still_rejected(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, [(404, "<html>Not Found</html>"), (401, {"API_ERROR": "Invalid"})])
    with pytest.raises(key_services.ApiKeyRejected):
        add_api_key(actor=user, label="Fallback", raw_key="k" * 32)
    assert not ApiKey.objects.exists()


def test_a_plan_period_in_the_past_reads_as_ended(member: Client, studio: SandboxAccount) -> None:
    ended = timezone.now() - timedelta(days=3)
    SandboxAccount.objects.filter(pk=studio.pk).update(renews_at=ended)
    add(member, "Studio production", create_sandbox_key("writer", account=studio.name))
    card = card_of(member.get(URL).content.decode(), "lead@lighthouse.example.com")
    assert "Period ended" in card and "Renews" not in card
