"""Character pages: list, create, detail, edit, import, clone, delete, rebind, sync, retry.

Thin by design, like teams.views: `team_view` checks the policy floor, forms validate,
`characters.services` does every Convai call, local write and audit event, and selectors read.
Domain errors become form errors or messages, and everything the member typed is kept.
Confirmations (clone, delete, rebind) are a partial in the shared dialog for htmx and a plain
page without JavaScript.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from convai_admin.display import moment_text
from convai_admin.htmx import confirm_or_act, render_page
from keys.models import ApiKey
from teams import policy
from teams.decorators import team_view
from teams.http import TeamRequest

from . import (
    binding,
    copying,
    errors,
    history,
    importing,
    operations,
    reconciliation,
    selectors,
    services,
)
from .catalogue import Catalogue, LanguageNames, VoiceNames, display_names, load_catalogue
from .drift import keep_local_version, remote_changes
from .forms import (
    AdoptForm,
    CloneForm,
    CreateCharacterForm,
    DeleteForm,
    EditCharacterForm,
    FilterForm,
    ImportConfirmForm,
    ImportFindForm,
    RebindForm,
    initial_from,
    key_choice_label,
    voice_choices,
)
from .models import EDITABLE_FIELDS, Character, Revision
from .remote import FIELD_LABELS, differences
from .templatetags.characters_extras import ago

PAGE_SIZE = 50
DETAIL_HISTORY_SIZE = 5  # the latest revisions on the detail page; "Full history" pages 20
BACKSTORY_PREVIEW_CHARS = 600  # a longer backstory starts collapsed on the detail page
# The event (HX-Trigger) after which the list's results reload themselves: a delete from the
# list, so the count above it follows.
CHARACTERS_CHANGED = "characters-changed"
CONVAI_ID = re.compile(r"^[0-9a-fA-F-]{16,64}$")


# --- Helpers -----------------------------------------------------------------------------------


def _character(request: TeamRequest, character_id: int) -> Character:
    """One character of this team (deleted ones included), with `key_usable`."""
    character = selectors.team_character(request.team, character_id)
    if character is None:
        raise errors.CharacterNotFound()
    return character


def _live(request: TeamRequest, character_id: int) -> Character | HttpResponse:
    """A live character, or a redirect to its tombstone page with a message."""
    character = _character(request, character_id)
    if character.is_deleted:
        messages.info(request, errors.CharacterDeleted.default_message)
        return redirect(_detail_url(request, character))
    return character


def _detail_url(request: TeamRequest, character: Character) -> str:
    return reverse("characters:character-detail", args=[request.team.slug, character.pk])


def _list_url(request: TeamRequest) -> str:
    return reverse("characters:character-list", args=[request.team.slug])


def _names(api_key: ApiKey | None = None) -> tuple[VoiceNames, LanguageNames]:
    """Display names without a Convai call (catalogue.display_names)."""
    return display_names(api_key)


def _catalogue_key(
    request: TeamRequest, *, character: Character | None = None, api_key_id: Any = None
) -> ApiKey | None:
    """The key to read the (account-independent) catalogues with: the one chosen in the form,
    else the character's bound key when usable, else the member's first verified key."""
    own = list(selectors.usable_keys_for(request.user))
    if api_key_id:
        chosen = next((k for k in own if str(k.pk) == str(api_key_id)), None)
        if chosen is not None:
            return chosen
    if character is not None and getattr(character, "key_usable", False):
        return character.bound_key
    return own[0] if own else None


def _catalogue(request: TeamRequest, **kwargs: Any) -> Catalogue:
    return load_catalogue(_catalogue_key(request, **kwargs))


def _display(field: str, value: Any) -> str:
    return history.display(value, field)


_change_rows = history.change_rows


def _snapshot_extras(snapshot: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(key, text, is_block) for the snapshot fields we do not edit."""
    extras = []
    for key in sorted(k for k in snapshot if k not in history.EDITED_SNAPSHOT_KEYS):
        value = snapshot[key]
        if isinstance(value, dict | list):
            text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
            extras.append((key, text, True))
        else:
            extras.append((key, "—" if value in (None, "") else str(value), False))
    return extras


def _language_labels(codes: list[str], names: dict[str, str]) -> list[dict[str, str]]:
    return [{"code": code, "name": names.get(code, code)} for code in codes or []]


def _voice_info(value: str, names: dict[str, dict[str, str]]) -> dict[str, str]:
    known = names.get(value) or {}
    return {"value": value, "name": known.get("name", ""), "gender": known.get("gender", "")}


def _local(moment: datetime) -> datetime:
    return timezone.localtime(moment)


_ago = ago


def _say_warnings(request: TeamRequest, saved: services.Saved) -> None:
    for warning in saved.warnings:
        messages.warning(request, warning)


def _to_new(request: TeamRequest, saved: services.Saved, message: str) -> HttpResponse:
    """After a character came into the team: its warnings, `message`, and its page."""
    _say_warnings(request, saved)
    messages.success(request, message)
    return redirect(_detail_url(request, saved.character))


def _to_existing(request: TeamRequest, error: errors.AlreadyInTeam) -> HttpResponse:
    """The team has it already: say so and show the one it has."""
    messages.info(request, error.message)
    return redirect(_detail_url(request, error.character))


def _made_on_convai(
    request: TeamRequest,
    form: Form,
    make: Callable[[], services.Saved],
    *,
    success: Callable[[Character], str],
    name: str,
    own_key: ApiKey | None,
    key_field: str | None = None,
) -> tuple[HttpResponse | None, AdoptForm | None]:
    """Run a create or a clone: on success, the way to the new character; on failure, the
    message on the form (the input stays), and "Check Convai" when the write timed out and may
    have happened under one of the member's own keys (`own_key`). `key_field` takes a refusal
    of the chosen key."""
    try:
        saved = make()
    except errors.OperationDone as error:
        # The same form sent twice: the first one made it; show that one.
        messages.info(request, error.message)
        target = error.character
        return redirect(_detail_url(request, target) if target else _list_url(request)), None
    except errors.KeyNotUsable as error:
        form.add_error(key_field, error.message)
    except errors.ConvaiFailed as error:
        form.add_error(None, error.message)
        if error.maybe_happened and own_key is not None:
            return None, AdoptForm(initial={"api_key": own_key.pk, "name": name})
    except errors.CharacterError as error:
        form.add_error(None, error.message)
    else:
        return _to_new(request, saved, success(saved.character)), None
    return None, None


def _changed_names(saved: services.Saved) -> str:
    return ", ".join(change.label.lower() for change in saved.changes)


def _sent_names(saved: services.Saved) -> str:
    """Every field sent, overwritten ones included ("name, backstory")."""
    return ", ".join(label.lower() for label in saved.sent_labels)


def _overwrite_note(saved: services.Saved) -> str:
    """After an "Overwrite": which of Convai's own changes were replaced by ours."""
    if not saved.overwritten:
        return ""
    names = ", ".join(change.label.lower() for change in saved.overwritten)
    return f" Convai's own changes to {names} were replaced with this dashboard's version."


def _answer_in_dialog(request: TeamRequest, response: HttpResponse) -> HttpResponse:
    """An htmx POST answered with the form again (an error) goes back into the dialog, not
    into the element that would have taken the success."""
    if request.htmx and request.method == "POST":
        reswap(retarget(response, "#modal-content"), "innerHTML")
    return response


# --- List -------------------------------------------------------------------------------------

_PK = 987654321  # a stand-in ID: reversed once per page, replaced per row


def _row_links(team_slug: str) -> dict[str, str]:
    """Each row's links as format strings, so a page of 50 rows reverses 3 URLs, not 150+
    (reverse() was a quarter of the list's render time). urls.py stays the one source."""
    return {
        name: reverse(
            f"characters:character-{name}", kwargs={"team_slug": team_slug, "character_id": _PK}
        ).replace(str(_PK), "{pk}")
        for name in ("detail", "clone", "delete")
    }


def _options(choices: list[tuple[str, str]], current: str) -> SafeString:
    """A filter select's <option>s, escaped, with `current` selected. Built in Python and
    memoized on the choices (a team's few hundred voices through a template loop were a
    third of the list page's render time); the selection is marked on the cached text."""
    key = (
        "characters:options:" + hashlib.blake2b(repr(choices).encode(), digest_size=16).hexdigest()
    )
    html: str | None = cache.get(key)
    if html is None:
        html = format_html_join("", '<option value="{}">{}</option>', choices)
        cache.set(key, html, ROW_CACHE_SECONDS)
    if current:
        marker = format_html('<option value="{}">', current)
        html = html.replace(marker, marker[:-1] + " selected>", 1)
    return mark_safe(html)  # noqa: S308 - escaped by format_html_join above


ROW_TEMPLATE = "characters/character_list.html#row"
ROW_CACHE_SECONDS = 60 * 60


def _render_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's HTML, memoized on everything the row prints: the cache key is a digest of
    the row's values (names, key state, permissions, "3 minutes ago"…), so any change makes a
    new key and a stale row cannot be served. Only our own rendering is ever cached."""
    keyed = {
        "characters:row:"
        + hashlib.blake2b(repr(sorted(row.items())).encode(), digest_size=16).hexdigest(): row
        for row in rows
    }
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


def _list_rows(
    request: TeamRequest,
    characters: list[Character],
    voice_names: VoiceNames,
    language_names: LanguageNames,
) -> list[dict[str, Any]]:
    """Each row as plain values: the template only prints them. Dictionary lookups are the
    template engine's fast path; attribute chains on models (c.bound_key.owner.display_name)
    were most of the list's render time."""
    link = _row_links(request.team.slug)
    may_clone = request.can.clone_character
    rows = []
    for c in characters:
        usable = bool(getattr(c, "key_usable", False))
        key = c.bound_key
        urls = {name: pattern.format(pk=c.pk) for name, pattern in link.items()}
        rows.append(
            {
                "pk": c.pk,
                "name": c.name,
                "url": urls["detail"],
                "pending": bool(c.pending_language_codes),
                "changed": c.remote_changed_at is not None,
                "voice_name": (voice_names.get(c.voice_type) or {}).get("name", ""),
                "voice_type": c.voice_type,
                "languages": _language_labels(c.language_codes, language_names),
                "key_label": key.label if key is not None else "",
                "key_last_four": key.last_four if key is not None else "",
                "key_owner": key.owner.display_name if key is not None else "",
                "unusable": not usable,
                "synced_ago": _ago(c.synced_at),
                # Formatted here: the date filter was a tenth of the list's render time.
                "synced_iso": c.synced_at.isoformat() if c.synced_at else "",
                "synced_title": moment_text(c.synced_at) if c.synced_at else "",
                "created_by": c.created_by.display_name if c.created_by else "—",
                "clone_url": urls["clone"] if usable and may_clone else "",
                "delete_url": (
                    urls["delete"]
                    if usable and policy.may(request.membership, "character.delete", c)
                    else ""
                ),
            }
        )
    return rows


@require_GET
@team_view("character.view")
def character_list(request: TeamRequest) -> HttpResponse:
    """Search, filter, sort and page the team's characters; htmx swaps only the results."""
    team = request.team
    voice_names, language_names = _names()
    form = FilterForm(request.GET)
    filters = selectors.CharacterFilters(
        q=str(form.value("q")).strip(),
        voice=form.value("voice"),
        language=form.value("language"),
        key=form.value("key"),
        unusable=bool(form.value("unusable")),
        changed=bool(form.value("changed")),
        sort=form.value("sort") or selectors.DEFAULT_SORT,
    )
    filtered = any(
        [filters.q, filters.voice, filters.language, filters.key, filters.unusable, filters.changed]
    )
    page, characters = selectors.character_page(team, filters, request.GET.get("page"), PAGE_SIZE)
    rows = _render_rows(_list_rows(request, characters, voice_names, language_names))
    context = {
        "team": team,
        "form": form,
        "page": page,
        "rows": rows,
        "filtered": filtered,
        # An unfiltered first page without rows: the team has no characters yet.
        "team_has_characters": bool(rows) or filtered,
    }
    if not request.htmx:
        # The filter bar exists only on the full page: an htmx refresh skips its queries.
        facets = selectors.facet_values(team)
        context["filter_options"] = {
            "voice": _options(
                [(v, voice_names.get(v, {}).get("name") or v) for v in facets["voices"]],
                filters.voice,
            ),
            "language": _options(
                [(c, language_names.get(c, c)) for c in facets["languages"]], filters.language
            ),
            "key": _options(
                [
                    (pk, f"{label} (…{last_four}) · {owner}")
                    for pk, label, last_four, owner in facets["keys"]
                ],
                filters.key,
            ),
        }
    if not request.htmx or not rows:
        context["has_usable_key"] = selectors.usable_keys_for(request.user).exists()
    if not request.htmx:
        context["operations"] = _operations(request)
    return render_page(request, "characters/character_list.html", context, partial="results")


def _operations(request: TeamRequest) -> list[dict[str, Any]]:
    """The team's creates, clones and deletes that have not finished: in progress, or (past
    the longest a request can take) "Outcome unknown: check Convai", with "Check now" for
    whoever may do the operation."""
    rows = []
    for operation in selectors.pending_operations(request.team):
        action = operations.OPERATION_ACTIONS[operation.kind]
        target = operation.character if operation.kind != "create" else None
        rows.append(
            {
                "pk": operation.pk,
                "kind": operation.get_kind_display(),
                "name": operation.name,
                "by": operation.actor.display_name if operation.actor else "Someone",
                "at": operation.created_at,
                "ago": _ago(operation.created_at),
                "overdue": getattr(operation, "overdue", False),
                "may_check": policy.may(request.membership, action, target),
            }
        )
    return rows


@require_POST
@team_view("character.view")
def operation_check(request: TeamRequest, operation_id: int) -> HttpResponse:
    """ "Check now": ask Convai what became of a create, clone or delete whose outcome is
    unknown, and settle it here (the policy of the operation itself is checked by the
    service)."""
    try:
        operation, outcome = reconciliation.check_operation(
            actor=request.membership, operation_id=operation_id
        )
    except (policy.NotAllowed, errors.CharacterError) as error:
        messages.error(request, error.message)
        return redirect(_list_url(request))
    kind = operation.get_kind_display().lower()
    if outcome in (reconciliation.Resolution.ADOPTED, reconciliation.Resolution.DELETED) or (
        outcome == reconciliation.Resolution.DONE and operation.state == operation.State.DONE
    ):
        target = operation.result or operation.character
        if operation.kind == operation.Kind.DELETE:
            messages.success(request, f"Convai confirms the {kind} of “{operation.name}”: done.")
        else:
            messages.success(
                request, f"Convai has “{operation.name}”: the {kind} happened; it is here now."
            )
            if target is not None:
                return redirect(_detail_url(request, target))
    elif operation.state == operation.State.FAILED:
        messages.info(
            request, f"The {kind} of “{operation.name}” did not happen: {operation.message}"
        )
    else:
        messages.warning(
            request,
            f"Convai could not tell yet what became of the {kind} of “{operation.name}”. It is "
            "checked again automatically; try “Check now” in a minute.",
        )
    return redirect(_list_url(request))


# --- Create, import, adopt ---------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@team_view("character.create")
def character_create(request: TeamRequest) -> HttpResponse:
    api_keys = selectors.usable_keys_for(request.user)
    has_keys = api_keys.exists()
    chosen_key = request.POST.get("api_key") or request.GET.get("api_key")
    catalogue = _catalogue(request, api_key_id=chosen_key) if has_keys else Catalogue()
    form = CreateCharacterForm(
        request.POST if request.method == "POST" else None,
        catalogue=catalogue,
        api_keys=api_keys,
    )
    adopt = None
    if request.method == "POST" and has_keys and form.is_valid():
        key_id = form.cleaned_data["api_key"]
        done, adopt = _made_on_convai(
            request,
            form,
            lambda: services.create_character(
                actor=request.membership,
                api_key_id=key_id,
                token=form.cleaned_data["token"],
                **form.fields_data(),
            ),
            success=lambda character: f"“{character.name}” was created on Convai.",
            name=form.cleaned_data["name"],
            own_key=next((k for k in api_keys if str(k.pk) == key_id), None),
            key_field="api_key",
        )
        if done is not None:
            return done
    context = {
        "team": request.team,
        "form": form,
        "catalogue": catalogue,
        "has_keys": has_keys,
        "adopt": adopt,
        "mode": "create",
    }
    return render(request, "characters/character_form.html", context)


@require_POST
@team_view("character.import")
def character_adopt(request: TeamRequest) -> HttpResponse:
    """ "Check Convai" after a create or clone that timed out: adopt it if it was made."""
    form = AdoptForm(request.POST)
    if not form.is_valid():
        messages.error(request, "That check could not be started: go back and try again.")
        return redirect(_list_url(request))
    try:
        saved = importing.adopt_from_convai(
            actor=request.membership,
            api_key_id=form.cleaned_data["api_key"],
            name=form.cleaned_data["name"],
        )
    except errors.AlreadyInTeam as error:
        return _to_existing(request, error)
    except errors.CharacterError as error:
        messages.error(request, error.message)
        return redirect(_list_url(request))
    return _to_new(
        request, saved, f"Found “{saved.character.name}” on Convai: it was created and is now here."
    )


@require_http_methods(["GET", "POST"])
@team_view("character.import")
def character_import(request: TeamRequest) -> HttpResponse:
    """Find a character on Convai by ID or exact name, show it, then import it."""
    api_keys = selectors.usable_keys_for(request.user)
    found = None
    step = request.POST.get("step", "find")
    form = ImportFindForm(
        request.POST if request.method == "POST" and step == "find" else None,
        api_keys=api_keys,
        initial={"lookup": request.GET.get("lookup", "")},
    )
    if request.method == "POST" and step == "import":
        confirm = ImportConfirmForm(request.POST)
        # The lookup form shows what was confirmed, so a failure keeps it for another try.
        form = ImportFindForm(
            {"api_key": request.POST.get("api_key", ""), "lookup": request.POST.get("convai_id")},
            api_keys=api_keys,
        )
        form.is_valid()
        if confirm.is_valid():
            try:
                saved = importing.import_character(
                    actor=request.membership,
                    api_key_id=confirm.cleaned_data["api_key"],
                    convai_id=confirm.cleaned_data["convai_id"],
                )
            except errors.AlreadyInTeam as error:
                return _to_existing(request, error)
            except errors.CharacterError as error:
                form.add_error(None, error.message)
            else:
                return _to_new(request, saved, f"Imported “{saved.character.name}” from Convai.")
        else:
            form.add_error(None, "That import could not be read: look the character up again.")
    elif request.method == "POST" and form.is_valid():
        lookup = form.cleaned_data["lookup"]
        by_id = bool(CONVAI_ID.match(lookup))
        try:
            found = importing.find_remote(
                actor=request.membership,
                api_key_id=form.cleaned_data["api_key"],
                convai_id=lookup if by_id else "",
                name="" if by_id else lookup,
            )
        except errors.CharacterError as error:
            form.add_error("lookup" if "not" in error.message.lower() else None, error.message)
    voice_names, language_names = _names(found.api_key if found is not None else None)
    context = {
        "team": request.team,
        "form": form,
        "has_keys": api_keys.exists(),
        "found": found,
        "found_fields": found.fields if found is not None else None,
        "found_voice": _voice_info(found.details.voice_type, voice_names) if found else None,
        "found_languages": (
            _language_labels(found.details.language_codes, language_names) if found else []
        ),
        "confirm": (
            ImportConfirmForm(
                initial={"api_key": found.api_key.pk, "convai_id": found.details.character_id}
            )
            if found is not None
            else None
        ),
    }
    return render(request, "characters/character_import.html", context)


@require_GET
@team_view("character.update")
def voice_options(request: TeamRequest) -> HttpResponse:
    """The voice picker's options, filtered server-side by search text and languages."""
    character = None
    if request.GET.get("character", "").isdigit():
        character = selectors.team_character(request.team, int(request.GET["character"]))
    catalogue = _catalogue(
        request, character=character, api_key_id=request.GET.get("api_key") or None
    )
    chosen = request.GET.get("voice_type", "")
    current = character.voice_type if character is not None else ""
    valid = {v.voice_value for v in catalogue.voices} | ({current} if current else set())
    choices, matched = voice_choices(
        catalogue,
        query=request.GET.get("voice_q", ""),
        languages=request.GET.getlist("language_codes"),
        keep=[v for v in (chosen, current) if v in valid],
    )
    context = {
        "choices": choices,
        "matched": matched,
        "total": len(catalogue.voices),
        "chosen": chosen,
        "catalogue": catalogue,
    }
    return render(request, "characters/voice_options.html", context)


# --- Detail ------------------------------------------------------------------------------------


@require_GET
@team_view("character.view")
def character_detail(request: TeamRequest, character_id: int) -> HttpResponse:
    """The character, its history and audit events; a backstory longer than
    BACKSTORY_PREVIEW_CHARS starts collapsed to a preview (a <details>, no JS)."""
    character = _character(request, character_id)
    actor = request.membership
    live = not character.is_deleted
    usable = bool(getattr(character, "key_usable", False)) and character.bound_key is not None
    voice_names, language_names = _names(character.bound_key if usable else None)
    # Gone from Convai: nothing can be done through Convai but checking again or removing it.
    missing = live and character.remote_missing_at is not None
    through_convai = live and usable and not missing
    context = {
        "team": request.team,
        "character": character,
        "voice": _voice_info(character.voice_type, voice_names),
        "languages": _language_labels(character.language_codes, language_names),
        "pending_languages": _language_labels(
            character.pending_language_codes or [], language_names
        ),
        "history": history.history_page(character, per_page=DETAIL_HISTORY_SIZE),
        "audit_events": history.audit_events(character),
        "snapshot_extras": _snapshot_extras(character.snapshot or {}),
        "backstory_preview_chars": BACKSTORY_PREVIEW_CHARS,
        "key_usable": usable,
        "live": live,
        "missing": missing,
        "saving": _saving(character) if live else None,
        "actions": {
            "edit": through_convai and policy.may(actor, "character.update", character),
            "clone": through_convai and policy.may(actor, "character.clone", character),
            "delete": through_convai and policy.may(actor, "character.delete", character),
            "rebind": live and not missing and policy.may(actor, "character.rebind", character),
            "sync": live and usable and policy.may(actor, "character.sync", character),
            "restore": through_convai and policy.may(actor, "character.restore", character),
            "remove": missing and policy.may(actor, "character.delete", character),
        },
        "drift_review": _drift_review(character) if live and not missing else None,
    }
    return render(request, "characters/character_detail.html", context)


def _drift_review(character: Character) -> dict[str, Any] | None:
    """The "Changed in Convai" panel: what the drift check saw there, against our last save."""
    if character.remote_changed_at is None:
        return None
    return {
        "since": character.remote_changed_at,
        "ago": _ago(character.remote_changed_at),
        "rows": _change_rows(
            remote_changes(character),
            left=f"Last saved here (version {character.version})",
            right="In Convai now",
        ),
        # Seen in the list only: the backstory there is not known yet.
        "backstory_unknown": "backstory" not in (character.remote_state or {}),
    }


def _saving(character: Character) -> dict[str, Any] | None:
    """A save on its way to Convai (it holds the version), or one a dead server left behind
    (its claim expired): said on the page, so nobody wonders why their save is refused."""
    if character.saving_since is None:
        return None
    return {
        "by": character.saving_by.display_name if character.saving_by else "Someone",
        "at": character.saving_since,
        "ago": _ago(character.saving_since),
        "interrupted": character.saving_since < selectors.save_claim_expired_before(),
    }


# --- Edit, sync, retry languages ----------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@team_view("character.update")
def character_edit(request: TeamRequest, character_id: int) -> HttpResponse:
    character = _live(request, character_id)
    if isinstance(character, HttpResponse):
        return character
    if request.method != "POST":
        # Nothing to edit through Convai; a POST still goes to the service, which records it.
        refusal = _cannot_edit(character)
        if refusal:
            messages.error(request, refusal)
            return redirect(_detail_url(request, character))
    catalogue = _catalogue(request, character=character)
    current = character.editable()
    drift: list[dict[str, Any]] = []
    conflict: dict[str, Any] | None = None
    if request.method == "POST":
        form = EditCharacterForm(request.POST, catalogue=catalogue, current=current)
        if form.is_valid():
            yours = form.fields_data()
            expected = form.cleaned_data["version"]
            try:
                saved = services.update_character(
                    actor=request.membership,
                    character_id=character.pk,
                    expected_version=expected,
                    fields=yours,
                    overwrite_drift=request.POST.get("overwrite_drift") == "1",
                )
            except errors.Drift as error:
                # The panel above the form says it all, with the two ways forward.
                drift = _change_rows(error.changes, left="Last saved here", right="In Convai now")
            except errors.Conflict as error:
                conflict = _conflict(character, error, expected, yours)
                data = request.POST.copy()
                data["version"] = str(error.version)
                # The panel above the form names who saved what; the input stays.
                form = EditCharacterForm(data, catalogue=catalogue, current=error.current)
                form.is_valid()
            except errors.CharacterError as error:
                form.add_error(None, error.message)
            else:
                _say_warnings(request, saved)
                if saved.changes:
                    messages.success(
                        request,
                        f"Saved {_sent_names(saved)} of “{saved.character.name}”."
                        + _overwrite_note(saved),
                    )
                else:
                    messages.info(request, "Nothing changed, so nothing was sent to Convai.")
                return redirect(_detail_url(request, saved.character))
    else:
        form = EditCharacterForm(
            initial={**initial_from(current), "version": character.version},
            catalogue=catalogue,
            current=current,
        )
    context = {
        "team": request.team,
        "character": character,
        "form": form,
        "catalogue": catalogue,
        "drift": drift,
        "conflict": conflict,
        "mode": "edit",
    }
    return render(request, "characters/character_form.html", context)


def _cannot_edit(character: Character) -> str:
    if character.remote_missing_at is not None:
        return errors.RemoteMissing.default_message
    if not getattr(character, "key_usable", False):
        return errors.NoUsableKey.default_message
    return ""


def _conflict(
    character: Character, error: errors.Conflict, expected: int, yours: dict[str, Any]
) -> dict[str, Any]:
    """What the teammate changed since the version this form was opened at, field by field,
    next to this member's input."""
    base = (
        Revision.objects.filter(character=character, number=expected)
        .values_list("fields", flat=True)
        .first()
    )
    theirs = error.current
    changed = differences(base, theirs) if base else differences(yours, theirs)
    fields = {c.field: _display(c.field, c.new) for c in changed}
    return {
        "by": error.by,
        "at": error.at,
        "ago": _ago(error.at),
        # Another save holds the version and has not finished: nothing of theirs to show yet.
        "in_progress": isinstance(error, errors.SaveInProgress),
        "fields": fields,
        "rows": [
            {
                "label": FIELD_LABELS[name],
                "theirs": fields[name],
                "yours": _display(name, yours.get(name)),
            }
            for name in EDITABLE_FIELDS
            if name in fields
        ],
    }


@require_POST
@team_view("character.sync")
def character_sync(request: TeamRequest, character_id: int) -> HttpResponse:
    """Sync from Convai: get it, keep Convai's version here, and say what changed (a revision
    only when something did). Also "Take Convai's version" after a drift on the edit form."""
    character = _live(request, character_id)
    if isinstance(character, HttpResponse):
        return character
    try:
        saved = services.take_remote_version(actor=request.membership, character_id=character.pk)
    except errors.RemoteMissing as error:
        messages.error(request, error.message)
        return redirect(_detail_url(request, character))
    except errors.CharacterError as error:
        messages.error(request, error.message)
        return redirect(_detail_url(request, character))
    name = saved.character.name
    if saved.changes:
        messages.success(
            request,
            f"Synced “{name}” from Convai. Changed there: {_changed_names(saved)}. "
            f"Stored as version {saved.character.version}.",
        )
    else:
        messages.info(request, f"“{name}” is already in step with Convai: nothing changed.")
    if request.POST.get("next") == "edit":
        return redirect("characters:character-edit", request.team.slug, character.pk)
    return redirect(_detail_url(request, character))


@require_POST
@team_view("character.update")
def character_keep_ours(request: TeamRequest, character_id: int) -> HttpResponse:
    """ "Keep ours" after the drift check saw changes in Convai: send our version over theirs
    (an update through the conflict guard; a teammate's save meanwhile stops it)."""
    character = _live(request, character_id)
    if isinstance(character, HttpResponse):
        return character
    try:
        saved = keep_local_version(
            actor=request.membership,
            character_id=character.pk,
            expected_version=_number(request.POST.get("version")) or 0,
        )
    except errors.Conflict:
        messages.error(
            request,
            "A teammate saved this character meanwhile, so nothing was sent to Convai. Review "
            "the changes again before you choose.",
        )
    except errors.CharacterError as error:
        messages.error(request, error.message)
    else:
        if saved.character.version != character.version:
            messages.success(
                request,
                f"Kept ours: “{saved.character.name}” in Convai is again the version saved "
                f"here, stored as version {saved.character.version}.",
            )
        else:
            messages.info(request, "Convai already holds the version saved here: nothing sent.")
    return redirect(_detail_url(request, character))


# --- History, compare, restore ------------------------------------------------------------------


def _history_context(request: TeamRequest, character: Character) -> dict[str, Any]:
    live = not character.is_deleted
    usable = bool(getattr(character, "key_usable", False)) and character.bound_key is not None
    through_convai = live and usable and character.remote_missing_at is None
    return {
        "team": request.team,
        "character": character,
        "live": live,
        "actions": {
            "restore": through_convai
            and policy.may(request.membership, "character.restore", character),
        },
    }


@require_GET
@team_view("character.view")
def character_history(request: TeamRequest, character_id: int) -> HttpResponse:
    """Every revision, newest first, 20 a page, each with its diff against the one before."""
    character = _character(request, character_id)
    context = {
        **_history_context(request, character),
        "history": history.history_page(character, request.GET.get("page")),
    }
    return render_page(request, "characters/character_history.html", context, partial="entries")


def _number(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@require_GET
@team_view("character.view")
def character_compare(request: TeamRequest, character_id: int) -> HttpResponse:
    """Any two revisions side by side (a plain GET form; htmx swaps only the result)."""
    character = _character(request, character_id)
    numbers = history.revision_numbers(character)
    first = _number(request.GET.get("a"))
    second = _number(request.GET.get("b"))
    if first is None and second is None and numbers:
        # Opened without a choice: the latest change (the version before the current one).
        second = numbers[0]
        first = numbers[1] if len(numbers) > 1 else numbers[0]
    comparison = None
    error = ""
    if first is not None and second is not None:
        comparison = history.compare(character, first, second)
        if comparison is None:
            error = "Choose two versions this character has."
    elif request.GET:
        error = "Choose two versions to compare."
    context = {
        **_history_context(request, character),
        "numbers": numbers,
        "first": first,
        "second": second,
        "comparison": comparison,
        "error": error,
    }
    return render_page(request, "characters/character_compare.html", context, partial="result")


@require_http_methods(["GET", "POST"])
@team_view("character.restore")
def character_restore(request: TeamRequest, character_id: int, number: int) -> HttpResponse:
    """Confirm, then put version `number` back through Convai: an ordinary update, guarded
    against conflicts and drift like an edit; what will change is shown first."""
    character = _live(request, character_id)
    if isinstance(character, HttpResponse):
        return character
    revision = (
        Revision.objects.filter(character=character, number=number)
        .select_related("created_by")
        .first()
    )
    if revision is None:
        raise errors.CharacterNotFound("This character has no such version.")
    expected = _number(request.POST.get("version")) or character.version
    overwrite = request.POST.get("overwrite_drift") == "1"
    drift: list[dict[str, Any]] = []
    error = ""
    conflict_by = ""
    refusal = _cannot_edit(character)
    if request.method == "POST" and not refusal:
        try:
            saved = services.restore_revision(
                actor=request.membership,
                character_id=character.pk,
                number=number,
                expected_version=expected,
                overwrite_drift=overwrite,
            )
        except errors.Drift as failure:
            drift = _change_rows(failure.changes, left="Last saved here", right="In Convai now")
            overwrite = True
        except errors.Conflict as failure:
            # A teammate saved meanwhile: show the restore against their version, ask again.
            conflict_by = failure.by.display_name if failure.by is not None else "Someone"
            character = _character(request, character_id)
            expected = failure.version
            overwrite = False
        except errors.RemoteMissing as failure:
            refusal = failure.message
            character.remote_missing_at = timezone.now()
        except errors.CharacterError as failure:
            error = failure.message
        else:
            _say_warnings(request, saved)
            if saved.changes:
                messages.success(
                    request,
                    f"Restored version {number} of “{saved.character.name}” "
                    f"({_sent_names(saved)}). It is now version {saved.character.version}."
                    + _overwrite_note(saved),
                )
            else:
                messages.info(
                    request, f"Version {number} is what “{saved.character.name}” is already."
                )
            return redirect(_detail_url(request, saved.character))
    else:
        expected = character.version
    changes = history.restore_changes(character, revision)
    context = {
        "team": request.team,
        "character": character,
        "revision": revision,
        "rows": _change_rows(changes, left="Now", right=f"Version {number}"),
        "version": expected,
        "overwrite": overwrite,
        "drift": drift,
        "error": error,
        "refusal": refusal,
        "conflict_by": conflict_by,
        "cancel_url": _detail_url(request, character),
    }
    return _answer_in_dialog(
        request,
        render_page(request, "characters/character_restore.html", context, partial="confirm"),
    )


@require_POST
@team_view("character.update")
def character_languages(request: TeamRequest, character_id: int) -> HttpResponse:
    """Retry the language codes Convai did not take after a create."""
    character = _live(request, character_id)
    if isinstance(character, HttpResponse):
        return character
    try:
        saved = services.retry_language_codes(actor=request.membership, character_id=character.pk)
    except errors.CharacterError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Convai now has the languages of “{saved.character.name}”.")
    return redirect(_detail_url(request, character))


# --- Clone, delete, rebind (dialogs) -----------------------------------------------------------


@require_http_methods(["GET", "POST"])
@team_view("character.clone")
def character_clone(request: TeamRequest, character_id: int) -> HttpResponse:
    character = _live(request, character_id)
    if isinstance(character, HttpResponse):
        return character
    form = CloneForm(
        request.POST if request.method == "POST" else None,
        initial={"new_name": f"{character.name} (copy)"[:100]},
    )
    adopt = None
    key = character.bound_key
    owner_is_you = key is not None and key.owner_id == request.user.pk
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["new_name"] or f"{character.name} (copy)"
        done, adopt = _made_on_convai(
            request,
            form,
            lambda: copying.clone_character(
                actor=request.membership,
                character_id=character.pk,
                new_name=name,
                include_kb=form.cleaned_data["include_kb"],
                token=form.cleaned_data["token"],
            ),
            success=lambda made: f"“{made.name}” is a copy of “{character.name}”.",
            name=name,
            own_key=key if owner_is_you else None,
        )
        if done is not None:
            return done
    context = {
        "team": request.team,
        "character": character,
        "form": form,
        "adopt": adopt,
        "owner_is_you": owner_is_you,
    }
    return render_page(request, "characters/character_clone.html", context, partial="confirm")


@require_http_methods(["GET", "POST"])
@team_view("character.delete")
def character_delete(request: TeamRequest, character_id: int) -> HttpResponse:
    """Type the name to confirm; the drift since the last save is shown first. From the list
    (htmx, `?from=list`) the row leaves the table; otherwise the browser goes to the list."""
    character = _live(request, character_id)
    if isinstance(character, HttpResponse):
        return character
    from_list = request.GET.get("from") == "list" or request.POST.get("from") == "list"
    allowed = policy.may(request.membership, "character.delete", character)
    drift: list[dict[str, Any]] = []
    drift_error = ""
    form = DeleteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        # Not allowed still goes to the service: the refusal is recorded where it is made.
        try:
            services.delete_character(
                actor=request.membership,
                character_id=character.pk,
                confirm_name=form.cleaned_data["confirm_name"],
                overwrite_drift=form.cleaned_data["overwrite_drift"],
                token=form.cleaned_data["token"],
            )
        except errors.OperationDone as error:
            # The same form sent twice: the first one deleted it.
            messages.info(request, error.message)
            return redirect(_list_url(request))
        except policy.NotAllowed as error:
            form.add_error(None, error.message)
        except errors.NameMismatch as error:
            form.add_error("confirm_name", error.message)
        except errors.RemoteMissing:
            character.remote_missing_at = timezone.now()  # the page offers the removal
        except errors.Drift as error:
            drift = _change_rows(error.changes, left="Last saved here", right="In Convai now")
            data = request.POST.copy()
            data["overwrite_drift"] = "1"
            form = DeleteForm(data)
            form.is_valid()
            form.add_error(
                None,
                "Convai's copy changed since it was last saved here (below). Deleting removes "
                "those changes too. Delete anyway?",
            )
        except errors.CharacterError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request,
                f"“{character.name}” was deleted on Convai. Its page and history stay here.",
            )
            if request.htmx and from_list:
                # The row swaps itself out; the message arrives out of band; the list's
                # results (the count above them, the page) refresh on CHARACTERS_CHANGED.
                response = HttpResponse(
                    render_to_string("characters/_messages_oob.html", request=request)
                )
                response["HX-Trigger"] = CHARACTERS_CHANGED
                return response
            return redirect(_list_url(request))
    elif (
        request.method != "POST"
        and allowed
        and getattr(character, "key_usable", False)
        and character.remote_missing_at is None
    ):
        try:
            changes = services.remote_drift(actor=request.membership, character_id=character.pk)
        except errors.RemoteMissing:
            character.remote_missing_at = timezone.now()
        except errors.CharacterError as error:
            drift_error = error.message
        else:
            drift = _change_rows(changes, left="Last saved here", right="In Convai now")
            if drift:
                form = DeleteForm(initial={"overwrite_drift": True})
    context = {
        "team": request.team,
        "character": character,
        "form": form,
        "allowed": allowed,
        "key_usable": bool(getattr(character, "key_usable", False)),
        "drift": drift,
        "drift_error": drift_error,
        "missing": character.remote_missing_at is not None,
        "from_list": from_list,
        "cancel_url": _detail_url(request, character),
    }
    return _answer_in_dialog(
        request,
        render_page(request, "characters/character_delete.html", context, partial="confirm"),
    )


@require_http_methods(["GET", "POST"])
@team_view("character.delete")
def character_remove(request: TeamRequest, character_id: int) -> HttpResponse:
    """Take a character Convai no longer has off the team's list (a tombstone; Convai is not
    asked to delete anything)."""
    character = _live(request, character_id)
    if isinstance(character, HttpResponse):
        return character

    def remove() -> str:
        services.remove_missing_character(actor=request.membership, character_id=character.pk)
        return f"“{character.name}” was removed from this team. Its page and history stay here."

    return confirm_or_act(
        request,
        template="characters/character_remove.html",
        context={"team": request.team, "character": character},
        act=remove,
        done_url=_list_url(request),
        failed_url=_detail_url(request, character),
    )


@require_http_methods(["GET", "POST"])
@team_view("character.rebind")
def character_rebind(request: TeamRequest, character_id: int) -> HttpResponse:
    character = _live(request, character_id)
    if isinstance(character, HttpResponse):
        return character
    candidates = [
        k
        for k in selectors.rebind_candidates(request.team.pk, character.bound_key)
        if k.pk != character.bound_key_id
    ]
    form = RebindForm(
        request.POST if request.method == "POST" else None,
        candidates=candidates,
        current=character.bound_key,
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved = binding.rebind_character(
                actor=request.membership,
                character_id=character.pk,
                api_key_id=form.cleaned_data["api_key"],
            )
        except errors.CharacterError as error:
            form.add_error("api_key", error.message)
        else:
            key = saved.character.bound_key
            messages.success(
                request,
                f"“{saved.character.name}” now works through {key_choice_label(key)}"
                if key is not None
                else "Rebound.",
            )
            return redirect(_detail_url(request, character))
    context = {
        "team": request.team,
        "character": character,
        "form": form,
        "candidates": candidates,
        "key_usable": bool(getattr(character, "key_usable", False)),
        "cancel_url": _detail_url(request, character),
    }
    return _answer_in_dialog(
        request,
        render_page(request, "characters/character_rebind.html", context, partial="confirm"),
    )
