"""Issue 12 §7, the consistency pass, for what needs no Convai: one date format with the time
zone, names by Convai's catalogue (unknown values as they are), natural name order, collapsed
long backstories, dir="auto" on user text, 403 texts for the person's role, Export and Jobs for
an Editor without a key, signing in again after an expired htmx request, the error summary."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.template import Context, Template
from django.test import Client
from django.urls import reverse

from characters import history
from characters.models import Character, sort_name_for
from characters.remote import FieldChange
from convai_admin.display import natural_key
from teams.models import Membership, Role
from tests.factories import CharacterFactory, MembershipFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
MOMENT = datetime(2026, 12, 4, 14, 20, 5, tzinfo=UTC)


def _member(client: Client, role: str = Role.EDITOR) -> Membership:
    membership = MembershipFactory.create(role=role)
    client.force_login(membership.user)
    return membership


def _render(source: str, **context: Any) -> str:
    return Template(source).render(Context(context))


# --- one date format, with the time zone --------------------------------------------------------


def test_a_moment_reads_the_same_everywhere_with_its_time_zone(settings: Any) -> None:
    assert _render("{{ at|when }}", at=MOMENT) == (
        '<time datetime="2026-12-04T14:20:05+00:00">4 Dec 2026, 14:20 UTC</time>'
    )
    assert _render('{{ at|moment:"seconds" }}', at=MOMENT) == "4 Dec 2026, 14:20:05 UTC"
    assert _render('{{ at|when:"day" }}', at=MOMENT).endswith(">4 Dec 2026</time>")
    assert _render("{{ at|when }}", at=None) == ""
    settings.TIME_ZONE = "Europe/Berlin"
    assert _render("{{ at|moment }}", at=MOMENT) == "4 Dec 2026, 15:20 CET"
    late = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)  # already the 5th in Berlin
    assert _render('{{ at|moment }}|{{ at|moment:"day" }}', at=late) == (
        "5 Dec 2026, 00:30 CET|5 Dec 2026"
    )


def test_no_template_formats_a_date_its_own_way() -> None:
    """Every date goes through `when`/`moment`; `|date` only writes a machine-readable "c"."""
    own_way = []
    for path in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        for found in re.findall(r"\|date:(['\"])(.*?)\1", path.read_text()):
            if found[1] != "c":
                own_way.append(f"{path.name}: {found[1]}")
    assert own_way == []


def test_the_detail_page_shows_dates_with_the_time_zone(client: Client) -> None:
    member = _member(client)
    character = CharacterFactory.create(team=member.team, created_at=MOMENT)
    html = client.get(
        reverse("characters:character-detail", args=[member.team.slug, character.pk])
    ).content.decode()
    assert '<time datetime="2026-12-04T14:20:05+00:00">4 Dec 2026, 14:20 UTC</time>' in html


# --- voice and language names -------------------------------------------------------------------


def test_diffs_name_voices_and_languages_and_show_unknown_values_as_they_are() -> None:
    rows = history.change_rows(
        [
            FieldChange("voice_type", "GuyNeural", "NotInTheCatalogue"),
            FieldChange("language_codes", ["en-US"], ["en-US", "de-DE", "xx-XX"]),
        ],
        left="Before",
        right="After",
    )
    assert (rows[0]["old"], rows[0]["new"]) == (
        "Guy Male American English Voice",
        "NotInTheCatalogue",
    )
    assert (rows[1]["old"], rows[1]["new"]) == ("English", "English, German, xx-XX")


def test_the_name_filters_use_the_shipped_catalogue() -> None:
    html = _render(
        "{{ v|voice_name }}|{{ c|language_name }}|{{ cs|language_names }}|{{ u|voice_name }}",
        v="GuyNeural",
        c="de-DE",
        cs=["en-US", "de-DE"],
        u="Mystery",
    )
    assert html == "Guy Male American English Voice|German|English, German|Mystery"


# --- natural order ------------------------------------------------------------------------------


def test_natural_keys_put_npc_2_before_npc_10() -> None:
    names = ["NPC 10", "npc 2", "NPC 1", "Alpha", "NPC 02b"]
    assert sorted(names, key=natural_key) == ["Alpha", "NPC 1", "npc 2", "NPC 02b", "NPC 10"]
    assert sorted(names, key=sort_name_for) == sorted(names, key=natural_key)


def test_the_list_sorts_names_naturally_in_the_database(client: Client) -> None:
    member = _member(client)
    for name in ("NPC 10", "NPC 2", "npc 1", "Zed"):
        CharacterFactory.create(team=member.team, name=name)
    renamed = CharacterFactory.create(team=member.team, name="NPC 30")
    renamed.name = "NPC 3"
    renamed.save(update_fields=["name"])
    listing = reverse("characters:character-list", args=[member.team.slug])

    def order(query: str) -> list[str]:
        html = client.get(listing + query).content.decode()
        return re.findall(r'class="cell-primary" href="[^"]+" dir="auto">([^<]+)<', html)

    assert order("") == ["npc 1", "NPC 2", "NPC 3", "NPC 10", "Zed"]
    assert order("?sort=-name") == ["Zed", "NPC 10", "NPC 3", "NPC 2", "npc 1"]
    assert Character.objects.get(pk=renamed.pk).sort_name == sort_name_for("NPC 3")


# --- long backstories, user text, long names ----------------------------------------------------


def test_a_long_backstory_starts_collapsed_and_a_short_one_does_not(client: Client) -> None:
    member = _member(client)
    long = CharacterFactory.create(team=member.team, backstory="A long life. " * 100)
    short = CharacterFactory.create(team=member.team, backstory="Short.")

    def detail(character: Character) -> str:
        return client.get(
            reverse("characters:character-detail", args=[member.team.slug, character.pk])
        ).content.decode()

    html = detail(long)
    assert '<details class="backstory-more">' in html
    assert "Show the whole backstory (300 words)" in html
    assert html.count("A long life.") > 100  # the preview, then the whole text
    assert 'class="backstory backstory-preview" dir="auto"' in html
    assert "backstory-more" not in detail(short)
    assert '<div class="backstory" dir="auto">Short.</div>' in detail(short)


def test_user_written_text_is_marked_dir_auto(client: Client) -> None:
    member = _member(client)
    character = CharacterFactory.create(team=member.team, name="شخصية 2")
    listing = client.get(
        reverse("characters:character-list", args=[member.team.slug])
    ).content.decode()
    assert 'dir="auto">شخصية 2</a>' in listing
    detail = client.get(
        reverse("characters:character-detail", args=[member.team.slug, character.pk])
    ).content.decode()
    assert '<h1 dir="auto">شخصية 2' in detail
    assert f'dir="auto">{member.team.name}</a>' in detail  # the breadcrumb


def test_table_cells_and_headings_wrap_long_unbroken_names() -> None:
    css = Path(settings.BASE_DIR, "static/css/app.css").read_text()
    rule = re.search(
        r"\.table \.cell-primary,\s*\.table \.cell-text,\s*h1,[^{]*\{"
        r"[^}]*overflow-wrap:\s*anywhere",
        css,
    )
    assert rule is not None


# --- 403 texts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "url_name", "told"),
    [
        (Role.VIEWER, "characters:character-create", "Viewers can read everything in the team"),
        (Role.EDITOR, "audit:log", "Editors work on characters"),
        (Role.ADMIN, "teams:settings", "Admins manage characters, Editors and Viewers"),
    ],
)
def test_a_403_names_the_rule_of_the_persons_role(
    client: Client, role: str, url_name: str, told: str
) -> None:
    member = _member(client, role)
    response = client.get(reverse(url_name, args=[member.team.slug]))
    assert response.status_code == 403
    html = response.content.decode()
    assert told in html
    assert "needs the" in html


def test_a_viewer_refused_a_delete_is_told_about_viewers_not_editors(client: Client) -> None:
    member = _member(client, Role.VIEWER)
    character = CharacterFactory.create(team=member.team)
    response = client.get(
        reverse("characters:character-delete", args=[member.team.slug, character.pk])
    )
    html = response.content.decode()
    assert response.status_code == 403
    assert "Viewers can read everything in the team" in html
    assert "Editors can delete only" not in html


# --- Export and Jobs without a key -------------------------------------------------------------


def test_an_editor_without_a_key_still_sees_export_and_jobs(client: Client) -> None:
    member = _member(client, Role.EDITOR)
    CharacterFactory.create(team=member.team)
    html = client.get(
        reverse("characters:character-list", args=[member.team.slug])
    ).content.decode()
    assert reverse("bundles:export", args=[member.team.slug]) in html
    assert reverse("jobs:job-list", args=[member.team.slug]) in html
    # What needs a key of one's own is not offered.
    assert reverse("jobs:import-all", args=[member.team.slug]) not in html
    assert reverse("bundles:import", args=[member.team.slug]) not in html
    assert reverse("keys:list") + "#add-key" in html  # and the way to get one


# --- signing in again after an expired htmx request ---------------------------------------------


def test_an_expired_htmx_dialog_signs_in_back_to_the_page_not_the_fragment(
    client: Client,
) -> None:
    character = CharacterFactory.create()
    slug = character.team.slug
    page = reverse("characters:character-detail", args=[slug, character.pk])
    dialog = reverse("characters:character-clone", args=[slug, character.pk])

    response = client.get(dialog, HTTP_HX_CURRENT_URL=f"http://testserver{page}?tab=1", **HTMX)

    assert response.status_code == 204
    login = reverse("accounts:login")
    assert response["HX-Redirect"] == f"{login}?next={page}%3Ftab%3D1"


def test_a_foreign_current_url_is_not_a_place_to_return_to(client: Client) -> None:
    character = CharacterFactory.create()
    dialog = reverse("characters:character-clone", args=[character.team.slug, character.pk])
    response = client.get(dialog, HTTP_HX_CURRENT_URL="https://evil.example/x", **HTMX)
    assert response["HX-Redirect"] == f"{reverse('accounts:login')}?next={dialog}"


def test_a_plain_request_keeps_its_own_next(client: Client) -> None:
    character = CharacterFactory.create()
    dialog = reverse("characters:character-clone", args=[character.team.slug, character.pk])
    response = client.get(dialog)
    assert response.status_code == 302
    assert response["Location"].endswith(f"?next={dialog}")


# --- the error summary --------------------------------------------------------------------------


def test_an_empty_form_answers_with_an_error_summary_linking_the_fields(client: Client) -> None:
    _member(client)
    html = client.post(reverse("keys:list"), {"label": "", "key": ""}).content.decode()
    summary = html[html.index("data-error-summary") - 200 :]
    assert 'tabindex="-1"' in summary[:400]
    assert "There are 2 problems" in summary
    assert 'href="#id_label"' in summary and 'href="#id_key"' in summary


def test_a_form_error_of_its_own_reads_as_before(client: Client) -> None:
    response = client.post(
        reverse("accounts:login"), {"login": "nobody", "password": "wrong-password"}
    )
    html = response.content.decode()
    assert "data-error-summary" in html
    assert "There is a problem" not in html  # one message of the form: no list needed
