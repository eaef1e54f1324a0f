"""What a member sees of a character and may do to it, derived in one place for every page.

`state_of` says what the character is (live, key usable, gone from Convai); `actions_for` asks
`teams.policy` what this member may do to it in that state. The list rows, the detail page, the
history pages and the edit/restore refusals all read these two answers, so a rule changes here
once. The list's rows and filter options are rendered here too, memoized under a key that
names the template's source and ROW_VERSION: new markup (a deploy) never serves old rows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from django.core.cache import cache
from django.template.loader import get_template
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from convai_admin.display import moment_text
from teams import policy
from teams.models import Membership

from . import errors
from .catalogue import LanguageNames, VoiceNames
from .models import Character
from .templatetags.characters_extras import ago

LIST_TEMPLATE = "characters/character_list.html"
ROW_TEMPLATE = LIST_TEMPLATE + "#row"
# Part of every cache key below: bump it when what a row or an option prints changes in code
# (the template's own changes are in the key already, through its source digest).
ROW_VERSION = 1
ROW_CACHE_SECONDS = 60 * 60


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
    """Each row as plain values: the template only prints them. Dictionary lookups are the
    template engine's fast path; attribute chains on models (c.bound_key.owner.display_name)
    were most of the list's render time."""
    base = reverse("characters:character-list", args=[member.team.slug])
    routes = _row_routes()
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
                "synced_ago": ago(c.synced_at),
                # Formatted here: the date filter was a tenth of the list's render time.
                "synced_iso": c.synced_at.isoformat() if c.synced_at else "",
                "synced_title": moment_text(c.synced_at) if c.synced_at else "",
                "created_by": c.created_by.display_name if c.created_by else "—",
                "clone_url": url("clone") if actions.clone else "",
                "delete_url": url("delete") if actions.delete else "",
            }
        )
    return rows


def _source_digest(name: str) -> str:
    """A digest of the template file's source, so the cache keys change with the markup
    (read per request: the template loader caches the source in production, and in
    development an edited template shows at once)."""
    template: Any = get_template(name)
    source = getattr(getattr(template, "template", template), "source", "")
    return hashlib.blake2b(source.encode(), digest_size=8).hexdigest()


def cache_prefix(kind: str) -> str:
    """characters:<kind>:<ROW_VERSION>:<template digest>: the part of a key that is not data."""
    return f"characters:{kind}:{ROW_VERSION}:{_source_digest(LIST_TEMPLATE)}:"


def _digest(value: Any) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=16).hexdigest()


def render_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's HTML (in row["html"]), memoized on everything the row prints and on the
    template: any change to a value (names, key state, permissions, "3 minutes ago"…) or to
    the markup makes a new key, so a stale row cannot be served."""
    prefix = cache_prefix("row")
    keyed = {prefix + _digest(sorted(row.items())): row for row in rows}
    cached = cache.get_many(list(keyed))
    fresh: dict[str, str] = {}
    template = get_template(ROW_TEMPLATE)
    for key, row in keyed.items():
        html = cached.get(key)
        if html is None:
            html = fresh[key] = template.render({"row": row})
        row["html"] = mark_safe(html)  # noqa: S308 - rendered (and escaped) by our template
    if fresh:
        cache.set_many(fresh, ROW_CACHE_SECONDS)
    return rows


def options(choices: list[tuple[str, str]], current: str) -> SafeString:
    """A filter select's <option>s, escaped, with `current` selected. Built in Python and
    memoized on the choices (a team's few hundred voices through a template loop were a
    third of the list page's render time); the selection is marked on the cached text."""
    key = cache_prefix("options") + _digest(choices)
    html: str | None = cache.get(key)
    if html is None:
        html = "".join(
            f'<option value="{escape(v)}">{escape(label)}</option>' for v, label in choices
        )
        cache.set(key, html, ROW_CACHE_SECONDS)
    if current:
        marker = f'<option value="{escape(current)}">'
        html = html.replace(marker, marker[:-1] + " selected>", 1)
    return mark_safe(html)  # noqa: S308 - every value and label escaped above


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
