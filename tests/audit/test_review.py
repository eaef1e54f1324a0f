"""The audit log page: who may see it, filters and qualifiers, keyset pages, details, export,
the Verify button, and a query count that does not grow with the table."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from audit.selectors import PAGE_SIZE, Criteria, parse_search
from audit.services import record
from teams.models import Role
from tests.audit.support import log_url, seed
from tests.audit.tampering import set_column
from tests.factories import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(team):
    return MembershipFactory.create(team=team, role=Role.ADMIN)


@pytest.mark.parametrize(("role", "status"), [(Role.VIEWER, 403), (Role.EDITOR, 403)])
def test_below_admin_is_refused(client: Client, team, role, status) -> None:
    member = MembershipFactory.create(team=team, role=role)
    client.force_login(member.user)
    for url in (
        log_url(team),
        reverse("audit:export-csv", args=[team.slug]),
        reverse("audit:export-jsonl", args=[team.slug]),
    ):
        assert client.get(url).status_code == status
    assert client.post(reverse("audit:verify", args=[team.slug])).status_code == status


def test_another_teams_log_does_not_exist_for_you(client: Client, team, admin) -> None:
    other = TeamFactory.create()
    seed(other, 2, label="Secret of the other team")
    client.force_login(admin.user)
    assert client.get(log_url(other)).status_code == 404
    page = client.get(log_url(team)).content.decode()
    assert "Secret of the other team" not in page
    foreign = AuditEvent.objects.filter(team=other).first()
    assert client.get(reverse("audit:event", args=[team.slug, foreign.pk])).status_code == 404


def test_owner_and_admin_see_newest_first(client: Client, team, admin) -> None:
    seed(team, 3)
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    for member in (admin, owner):
        client.force_login(member.user)
        body = client.get(log_url(team)).content.decode()
        assert body.index("Character 2") < body.index("Character 1") < body.index("Character 0")
        assert "Audit log</a>" in body  # the nav link


def test_filters_and_qualifiers(client: Client, team, admin) -> None:
    alice = UserFactory.create(username="alice", first_name="Alice", last_name="A")
    seed(team, 2, actor=alice, action="character.delete", outcome=Outcome.FAILURE, label="Gone")
    seed(team, 2, action="character.update", label="Kept")
    client.force_login(admin.user)
    body = client.get(
        log_url(team, q="actor:alice action:character.delete outcome:failure created:>=2020-01-01")
    ).content.decode()
    assert "Gone" in body and "Kept" not in body
    body = client.get(log_url(team, q="Kept")).content.decode()
    assert "Kept" in body and "Gone" not in body
    body = client.get(log_url(team, actor=alice.pk)).content.decode()
    assert "Gone" in body and "Kept" not in body
    body = client.get(log_url(team, q="action:character outcome:failure")).content.decode()
    assert "Gone" in body and "Kept" not in body
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    body = client.get(log_url(team, since=tomorrow)).content.decode()
    assert "No matching events" in body
    body = client.get(log_url(team, q=f"created:<{tomorrow}")).content.decode()
    assert "Gone" in body and "Kept" in body


def test_search_parsing() -> None:
    criteria = parse_search(
        'actor:alice action:character.* outcome:denied created:2026-11-01..2026-11-30 "two words"',
        Criteria(),
    )
    assert criteria.actor_names == ["alice"]
    assert criteria.action_prefixes == ["character."]
    assert criteria.outcome == "denied"
    assert str(criteria.since) == "2026-11-01" and str(criteria.until) == "2026-11-30"
    assert criteria.text == ["two words"]
    assert parse_search("created:yesterday", Criteria()).errors


def test_htmx_filtering_returns_the_results_fragment(client: Client, team, admin) -> None:
    seed(team, 2)
    client.force_login(admin.user)
    response = client.get(
        log_url(team, q="Character 1"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="audit-results"
    )
    body = response.content.decode()
    assert "<html" not in body and "Character 1" in body and "Character 0" not in body
    assert "HX-Request" in response["Vary"]


def test_keyset_pages_walk_the_whole_log_without_offset(client: Client, team, admin) -> None:
    seed(team, PAGE_SIZE * 2 + 5)
    client.force_login(admin.user)
    seen: list[int] = []
    url = log_url(team)
    with CaptureQueriesContext(connection) as queries:
        while True:
            response = client.get(url)
            page = response.context["page"]
            seen += [e.pk for e in page.events]
            if page.older_than is None:
                break
            url = log_url(team, after=page.older_than)
    ids = list(AuditEvent.objects.filter(team=team).order_by("-id").values_list("pk", flat=True))
    assert seen == ids
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
    assert "OFFSET" not in sql and "COUNT(" not in sql
    # And back: "Newer" from the last page returns the page before it.
    newer = client.get(log_url(team, before=page.newer_than)).context["page"]
    assert [e.pk for e in newer.events] == ids[PAGE_SIZE : PAGE_SIZE * 2]


def test_a_row_expands_with_htmx_and_on_its_own_page(client: Client, team, admin) -> None:
    event = seed(team, 1)[0]
    client.force_login(admin.user)
    url = reverse("audit:event", args=[team.slug, event.pk])
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment
    for text in (
        "old 0",
        "new 0",
        "Main (…abcd)",
        f'seq <span class="mono">{event.seq}',
        event.hash,
    ):
        assert text in fragment
    page = client.get(url).content.decode()
    assert "<html" in page and event.hash in page


def test_the_query_count_does_not_grow_with_the_table(
    client: Client, team, admin, django_assert_num_queries
) -> None:
    client.force_login(admin.user)
    seed(team, 10)
    client.get(log_url(team))  # the first visit saves the session's current team
    with CaptureQueriesContext(connection) as small:
        client.get(log_url(team, q="actor:nobody action:character.update created:>=2020-01-01"))
        client.get(log_url(team))
    seed(team, 100)
    with django_assert_num_queries(len(small.captured_queries)):
        client.get(log_url(team, q="actor:nobody action:character.update created:>=2020-01-01"))
        client.get(log_url(team))


def _stream(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_exports_stream_the_filter_with_chain_fields_and_are_audited(
    client: Client, team, admin, tmp_path
) -> None:
    seed(team, 3, label="Exported")
    seed(team, 2, label="Other", action="member.removed")
    client.force_login(admin.user)
    response = client.get(
        reverse("audit:export-jsonl", args=[team.slug]) + "?action=character.update"
    )
    assert response.streaming
    lines = _stream(response).splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["target_label"] for r in rows] == ["Exported"] * 3
    assert {"chain", "seq", "prev_hash", "hash", "key_id"} <= set(rows[0])
    exported = AuditEvent.objects.filter(team=team, action="audit.exported").get()
    assert exported.details["format"] == "jsonl"
    # Offline re-verification of the export with the documented command.
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(lines))
    out = io.StringIO()
    call_command("audit_verify", "--export", str(path), stdout=out)
    assert "All 3 exported event(s) verify." in out.getvalue()
    rows[1]["target_label"] = "Edited offline"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(Exception, match="problem"):
        call_command(
            "audit_verify", "--export", str(path), stdout=io.StringIO(), stderr=io.StringIO()
        )
    csv_body = _stream(client.get(reverse("audit:export-csv", args=[team.slug])))
    header, *csv_lines = csv_body.strip().splitlines()
    assert header.startswith("id,created_at,chain,seq,prev_hash,hash,key_id")
    assert len(csv_lines) == 6  # 5 seeded + the JSONL export event (not its own)


def test_csv_export_defuses_formulas(client: Client, team, admin) -> None:
    seed(team, 1, label='=HYPERLINK("http://evil")')
    client.force_login(admin.user)
    body = _stream(client.get(reverse("audit:export-csv", args=[team.slug])))
    assert "'=HYPERLINK" in body


def test_verify_button_shows_the_result_and_the_last_checkpoint(
    client: Client, team, admin
) -> None:
    events = seed(team, 3)
    client.force_login(admin.user)
    url = reverse("audit:verify", args=[team.slug])
    body = client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "The audit log is intact" in body and "Last checkpoint" in body
    set_column(events[1].pk, "target_label", "tampered")
    body = client.post(url).content.decode()
    assert "tampered with" in body and "altered or forged" in body
    outcomes = list(
        AuditEvent.objects.filter(action="audit.verified")
        .order_by("id")
        .values_list("outcome", flat=True)
    )
    assert outcomes == [Outcome.SUCCESS, Outcome.FAILURE]
    # The page shows the last result beside the button, without re-running the check.
    page = client.get(log_url(team)).content.decode()
    assert "Last verified" in page and "problem" in page


def test_links_from_members_and_character_pages(client: Client, team, admin) -> None:
    client.force_login(admin.user)
    body = client.get(reverse("teams:members", args=[team.slug])).content.decode()
    assert f"{reverse('audit:log', args=[team.slug])}?member={admin.user.pk}" in body
    response = client.get(log_url(team, member=admin.user.pk))
    assert response.status_code == 200 and not response.context["criteria"].errors


def test_a_members_link_shows_what_they_did_and_what_was_done_to_them(
    client: Client, team, admin
) -> None:
    member = MembershipFactory.create(team=team, role=Role.EDITOR)
    seed(team, 1, actor=member.user, label="By the member")
    record(
        "member.role_changed",
        actor=admin.user,
        team=team,
        target_type="membership",
        target_id=member.pk,
        target_label=member.user.display_name,
        details={"role_change": ["viewer", "editor"]},
    )
    record(
        "member.unlocked",
        actor=admin.user,
        team=team,
        target_type="user",
        target_id=member.user.pk,
        target_label=member.user.display_name,
    )
    seed(team, 1, actor=admin.user, label="Unrelated")
    client.force_login(admin.user)
    response = client.get(log_url(team, member=member.user.pk))
    actions = [row["event"].action for row in response.context["rows"]]
    assert actions == ["member.unlocked", "member.role_changed", "character.update"]
    body = response.content.decode()
    assert "what was done to their membership or account" in body
    assert f"?actor={member.user.pk}" in body  # the narrower link: only what they did
    only_theirs = client.get(log_url(team, actor=member.user.pk))
    assert [r["event"].target_label for r in only_theirs.context["rows"]] == ["By the member"]


def test_a_timed_out_write_is_shown_apart_and_can_be_filtered(client: Client, team, admin) -> None:
    seed(team, 2)
    seed(team, 1, outcome=Outcome.UNKNOWN, label="Timed out")
    seed(team, 1, outcome=Outcome.FAILURE, label="Failed")
    client.force_login(admin.user)
    body = client.get(log_url(team)).content.decode()
    assert body.count("badge badge-unknown") == 1
    assert "may or may not have happened" in body
    response = client.get(log_url(team, q="outcome:unknown"))
    assert [r["event"].target_label for r in response.context["rows"]] == ["Timed out"]
    response = client.get(log_url(team, outcome="unknown"))
    assert [r["event"].target_label for r in response.context["rows"]] == ["Timed out"]
    event = AuditEvent.objects.get(team=team, outcome=Outcome.UNKNOWN)
    detail = client.get(reverse("audit:event", args=[team.slug, event.pk])).content.decode()
    assert "badge-unknown" in detail and "may or may not have happened" in detail


def test_the_export_links_follow_the_filter_after_an_htmx_search(
    client: Client, team, admin
) -> None:
    seed(team, 2)
    client.force_login(admin.user)
    body = client.get(
        log_url(team, q="outcome:failure"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="audit-results"
    ).content.decode()
    assert 'id="audit-exports" class="audit-exports" hx-swap-oob="true"' in body
    assert "export.csv?q=outcome%3Afailure" in body
    full = client.get(log_url(team)).content.decode()
    assert "hx-swap-oob" not in full.split('id="audit-results"')[0]
