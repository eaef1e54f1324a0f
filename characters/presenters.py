"""What a member sees of a character and may do to it, derived in one place for every page.

`state_of` says what the character is (live, key usable, gone from Convai); `actions_for` asks
`teams.policy` what this member may do to it in that state. The list rows, the detail page, the
history pages and the edit/restore refusals all read these two answers, so a rule changes here
once. The list's rows and its filter options are built here (row_html, options), escaped,
and nothing of either is cached: new markup (a deploy) and another server show the same rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from html import escape
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from convai_admin.display import moment_text
from teams import policy
from teams.models import Membership

from . import errors
from .catalogue import LanguageNames, VoiceNames
from .models import Character
from .templatetags.characters_extras import ago

# --- State and actions ------------------------------------------------------------------------


@dataclass(frozen=True)
class CharacterState:
    """What a character is, as far as acting on it goes."""

    live: bool  # not deleted (a deleted character's page and history stay readable)
    key_usable: bool  # bound to a key that is active and whose owner is in the team
    missing: bool  # Convai no longer has it: only checking again or removing it remain

    @property
    def through_convai(self) -> bool:
        """Whether anything can be sent to Convai for it."""
        return self.live and self.key_usable and not self.missing

    @property
    def edit_refusal(self) -> str:
        """Why it cannot be changed through Convai ("" when it can)."""
        if self.missing:
            return errors.RemoteMissing.default_message
        if not self.key_usable:
            return errors.NoUsableKey.default_message
        return ""


def state_of(character: Character) -> CharacterState:
    """`character` as read by the selectors (they annotate `key_usable`)."""
    live = not character.is_deleted
    return CharacterState(
        live=live,
        key_usable=bool(getattr(character, "key_usable", False))
        and character.bound_key_id is not None,
        missing=live and character.remote_missing_at is not None,
    )


class Actions:
    """What the member may do to the character, in its state: the policy's answers, limited
    by what the state allows. Each is asked when first read (a list row reads two)."""

    def __init__(self, member: Membership, character: Character, state: CharacterState) -> None:
        self._member = member
        self._character = character
        self._state = state

    def _may(self, action: str) -> bool:
        return policy.may(self._member, action, self._character)

    @cached_property
    def edit(self) -> bool:
        return self._state.through_convai and self._may("character.update")

    @cached_property
    def clone(self) -> bool:
        return self._state.through_convai and self._may("character.clone")

    @cached_property
    def delete(self) -> bool:
        return self._state.through_convai and self._may("character.delete")

    @cached_property
    def rebind(self) -> bool:
        return self._state.live and not self._state.missing and self._may("character.rebind")

    @cached_property
    def sync(self) -> bool:
        return self._state.live and self._state.key_usable and self._may("character.sync")

    @cached_property
    def restore(self) -> bool:
        return self._state.through_convai and self._may("character.restore")

    @cached_property
    def remove(self) -> bool:
        return self._state.missing and self._may("character.delete")


def actions_for(
    member: Membership, character: Character, state: CharacterState | None = None
) -> Actions:
    """What `member` may do to `character` (its state read once, unless given)."""
    return Actions(member, character, state or state_of(character))


# --- The list ---------------------------------------------------------------------------------


def language_labels(codes: list[str] | None, names: LanguageNames) -> list[dict[str, str]]:
    return [{"code": code, "name": names.get(code, code)} for code in codes or []]


def voice_info(value: str, names: VoiceNames) -> dict[str, str]:
    known = names.get(value) or {}
    return {"value": value, "name": known.get("name", ""), "gender": known.get("gender", "")}


ROW_LINKS = ("detail", "clone", "delete")
_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


@lru_cache(maxsize=1)
def _row_routes() -> dict[str, str]:
    """Each row link's route below the list's URL as a format string ("{character_id}/clone/"),
    read from characters/urls.py, the one source of the paths. Joined to the list's URL,
    reversed once a page, a row costs no reverse() (150 a page were a tenth of its time)."""
    from . import urls  # imported here: the URLconf imports the views, which import this

    routes = {}
    for pattern in urls.urlpatterns:
        route = str(pattern.pattern)
        name = (pattern.name or "").removeprefix("character-")
        if name in ROW_LINKS and route.startswith(urls.TEAM):
            routes[name] = _PARAMETER.sub(r"{\1}", route.removeprefix(urls.TEAM))
    assert set(routes) == set(ROW_LINKS), routes
    return routes


def list_rows(
    member: Membership,
    characters: list[Character],
    voice_names: VoiceNames,
    language_names: LanguageNames,
) -> list[dict[str, Any]]:
    """Each row as plain values, and as its markup in "html" (row_html), which the template
    prints: attribute chains on models (c.bound_key.owner.display_name) in the template were
    most of the list's render time, and the template engine itself most of the rest."""
    base = reverse("characters:character-list", args=[member.team.slug])
    routes = _row_routes()
    now = timezone.now()  # one clock for the page's "x ago"
    rows = []
    for c in characters:
        state = state_of(c)
        actions = actions_for(member, c, state)
        key = c.bound_key

        def url(name: str, pk: int = c.pk) -> str:
            return base + routes[name].format(character_id=pk)

        rows.append(
            {
                "pk": c.pk,
                "name": c.name,
                "url": url("detail"),
                "pending": bool(c.pending_language_codes),
                "changed": c.remote_changed_at is not None,
                "voice_name": (voice_names.get(c.voice_type) or {}).get("name", ""),
                "voice_type": c.voice_type,
                "languages": language_labels(c.language_codes, language_names),
                "key_label": key.label if key is not None else "",
                "key_last_four": key.last_four if key is not None else "",
                "key_owner": key.owner.display_name if key is not None else "",
                "unusable": not state.key_usable,
                "synced_ago": ago(c.synced_at, now),
                # Formatted here: the date filter was a tenth of the list's render time.
                "synced_iso": c.synced_at.isoformat() if c.synced_at else "",
                "synced_title": moment_text(c.synced_at) if c.synced_at else "",
                "created_by": c.created_by.display_name if c.created_by else "—",
                "clone_url": url("clone") if actions.clone else "",
                "delete_url": url("delete") if actions.delete else "",
            }
        )
        rows[-1]["html"] = row_html(rows[-1])
    return rows


# The Python-built markup below is what templates/characters/character_list.html's table
# prints for each row: like Django admin's changelist (its cells are built with format_html),
# a row is one string, because 50 rows through the template engine were a third of the
# list's time (~20 variables and a dozen tags each). Every value is escaped here.
_CHANGED = (
    '<span class="badge badge-changed" title="Edited in Convai since it was last saved here: '
    'open it to review the changes">Changed in Convai</span>'
)
_PENDING = '<span class="badge badge-warning">Languages pending</span>'
_NONE = '<span class="muted">—</span>'


def row_html(row: dict[str, Any]) -> SafeString:
    """One row of the list's table (`row` from list_rows), escaped."""
    e = escape
    name = e(row["name"])
    if row["voice_name"]:
        voice = f'<span class="cell-text">{e(row["voice_name"])}</span>'
    elif row["voice_type"]:
        voice = f'<span class="mono small">{e(row["voice_type"])}</span>'
    else:
        voice = _NONE
    languages = " ".join(
        f'<span class="badge badge-muted" title="{e(lang["code"])}">{e(lang["name"])}</span>'
        for lang in row["languages"]
    )
    key = ""
    if row["key_label"]:
        key = (
            f'<span class="cell-text nowrap" dir="auto">{e(row["key_label"])} '
            f'<span class="mono muted">…{e(row["key_last_four"])}</span></span> '
            f'<span class="cell-secondary" dir="auto">{e(row["key_owner"])}</span>'
        )
    if row["unusable"]:
        key += ' <span class="badge badge-danger">No usable key</span>'
    synced = (
        f'<time datetime="{e(row["synced_iso"])}" title="{e(row["synced_title"])}">'
        f"{e(row['synced_ago'])}</time>"
        if row["synced_iso"]
        else '<span class="muted">Never</span>'
    )
    hidden = f'<span class="visually-hidden"> {name}</span>'
    actions = ""
    if row["clone_url"]:
        url = e(row["clone_url"])
        actions += (
            f'<a class="btn btn-small btn-secondary" href="{url}" hx-get="{url}" '
            f'hx-target="#modal-content" hx-push-url="false">Clone{hidden}</a> '
        )
    if row["delete_url"]:
        url = e(row["delete_url"])
        actions += (
            f'<a class="btn btn-small btn-quiet-danger" href="{url}" hx-get="{url}?from=list" '
            f'hx-target="#modal-content" hx-push-url="false">Delete{hidden}</a>'
        )
    return mark_safe(  # noqa: S308 - every value escaped above
        f'<tr id="character-{int(row["pk"])}">'
        f'<td><a class="cell-primary" href="{e(row["url"])}" dir="auto">{name}</a>'
        f"{' ' + _CHANGED if row['changed'] else ''}{' ' + _PENDING if row['pending'] else ''}"
        f"</td>"
        f'<td data-label="Voice">{voice}</td>'
        f'<td data-label="Languages">{languages or _NONE}</td>'
        f'<td data-label="Bound key">{key}</td>'
        f'<td class="nowrap" data-label="Last synced">{synced}</td>'
        f'<td data-label="Created by" dir="auto">{e(row["created_by"])}</td>'
        f'<td class="table-actions">{actions}</td></tr>\n'
    )


def options(choices: list[tuple[str, str]], current: str) -> SafeString:
    """A filter select's <option>s, escaped, with `current` selected. Built in Python: a
    team's few hundred voices through a template loop were a third of the list page's render
    time (nothing is cached: a shared cache costs a query, more than building them)."""
    return mark_safe(  # noqa: S308 - every value and label escaped here
        "".join(
            f'<option value="{escape(v)}"{" selected" if v == current else ""}>'
            f"{escape(label)}</option>"
            for v, label in choices
        )
    )


def filter_options(
    facets: dict[str, list[Any]],
    voice_names: VoiceNames,
    language_names: LanguageNames,
    current: dict[str, str],
) -> dict[str, SafeString]:
    """The voice, language and key <option>s of the list's filter bar."""
    return {
        "voice": options(
            [(v, voice_names.get(v, {}).get("name") or v) for v in facets["voices"]],
            current["voice"],
        ),
        "language": options(
            [(c, language_names.get(c, c)) for c in facets["languages"]], current["language"]
        ),
        "key": options(
            [
                (pk, f"{label} (…{last_four}) · {owner}")
                for pk, label, last_four, owner in facets["keys"]
            ],
            current["key"],
        ),
    }
