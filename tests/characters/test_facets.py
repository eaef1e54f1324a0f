"""The list's filter options (voices, languages, keys in use) are stored per team
(CharacterFacets) and kept right by every writer: the next list after any change shows what
the characters say, without the cache, on any server."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from characters import binding, copying, importing, selectors, services
from characters.models import FACET_FIELDS, Character, CharacterFacets
from teams.models import Membership, Role
from tests.characters.support import remote
from tests.factories import CharacterFactory
from tests.support.characters import BACKSTORY, Key

Create = Callable[..., services.Saved]


def _stored(member: Membership) -> dict[str, Any]:
    facets = selectors.facet_values(member.team)
    return {**facets, "keys": sorted(key[0] for key in facets["keys"])}


def _truth(member: Membership) -> dict[str, Any]:
    read = selectors.read_facets(member.team)
    return {**read, "keys": sorted(key[0] for key in read["keys"])}


# --- Each writer: store the facets, write, and the next read matches the characters -----------


def _update(w: Any) -> None:
    c = w.character
    services.update_character(
        actor=w.editor,
        character_id=c.pk,
        expected_version=c.version,
        fields={"voice_type": "FEMALE", "language_codes": ["de-DE"]},
    )


def _delete(w: Any) -> None:
    services.delete_character(
        actor=w.editor, character_id=w.character.pk, confirm_name=w.character.name
    )


def _clone(w: Any) -> None:
    copying.clone_character(actor=w.editor, character_id=w.character.pk, new_name="Copy")


def _copy(w: Any) -> None:
    other = w.add_key(w.editor, "Production", account="production")
    copying.copy_character(actor=w.editor, character_id=w.character.pk, api_key_id=other.pk)


def _create(w: Any) -> None:
    w.create(name="Liz", voice_type="FEMALE", language_codes=["es-ES"])


def _import(w: Any) -> None:
    convai_id = w.make_client(w.key.raw).create_character("Dembe", "GuyNeural", BACKSTORY)
    importing.import_character(actor=w.editor, api_key_id=w.key.pk, convai_id=convai_id)


def _sync(w: Any) -> None:
    copy = remote(w.character)
    copy.voice_type = "FEMALE"
    copy.save()
    services.take_remote_version(actor=w.editor, character_id=w.character.pk)


def _rebind(w: Any) -> None:
    admin = w.make_member(Role.ADMIN)
    other = w.add_key(admin, "Admin key", account=w.account)
    binding.rebind_character(actor=admin, character_id=w.character.pk, api_key_id=other.pk)


def _restore(w: Any) -> None:
    _update(w)
    w.before = _stored(w.editor)  # stored again, with the edit: the restore must drop it
    services.restore_revision(
        actor=w.editor, character_id=w.character.pk, number=1, expected_version=2
    )


def _remove_missing(w: Any) -> None:
    remote(w.character).delete()  # deleted in Convai's playground, behind our back
    Character.objects.filter(pk=w.character.pk).update(remote_missing_at=timezone.now())
    services.remove_missing_character(actor=w.editor, character_id=w.character.pk)


WRITERS = {
    "create": _create,
    "import": _import,
    "update": _update,
    "restore": _restore,
    "sync": _sync,
    "rebind": _rebind,
    "clone": _clone,
    "copy": _copy,
    "delete": _delete,
    "remove_missing": _remove_missing,
}


class World:
    def __init__(self, **fixtures: Any) -> None:
        self.__dict__.update(fixtures)


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_keeps_the_stored_facets_right(
    writer: str,
    editor: Membership,
    add_key: Callable[..., Key],
    make_member: Callable[..., Membership],
    make_client: Callable[..., Any],
) -> None:
    account = "studio"
    key = add_key(editor, "Studio", account=account)

    def create(**fields: Any) -> services.Saved:
        values = {"name": "Raymond", "voice_type": "MALE", "backstory": BACKSTORY}
        return services.create_character(
            actor=editor,
            api_key_id=key.pk,
            actions=[],
            **{"language_codes": [], **values, **fields},
        )

    character = create(language_codes=["fr-FR"]).character
    world = World(
        editor=editor,
        key=key,
        account=account,
        character=character,
        create=create,
        add_key=add_key,
        make_member=make_member,
        make_client=make_client,
    )
    assert _stored(editor) == _truth(editor)  # stored now
    world.before = _truth(editor)

    WRITERS[writer](world)

    assert not CharacterFacets.objects.filter(team=editor.team).exists(), "not dropped"
    assert _stored(editor) == _truth(editor)
    if writer != "clone":  # a clone shows nothing new (same voice, languages and key)
        assert _truth(editor) != world.before, "the writer changed nothing the filters show"


# --- The mechanism ------------------------------------------------------------------------------


def test_saving_a_field_the_facets_come_from_drops_them_and_other_saves_keep_them(
    team: Any,
) -> None:
    character = CharacterFactory(team=team, voice_type="MALE")
    selectors.facet_values(team)
    character.synced_at = timezone.now()
    character.save(update_fields=["synced_at"])
    assert CharacterFacets.objects.filter(team=team).exists()

    character.voice_type = "FEMALE"
    character.save(update_fields=["voice_type"])
    assert not CharacterFacets.objects.filter(team=team).exists()
    assert selectors.facet_values(team)["voices"] == ["FEMALE"]


def test_no_queryset_update_in_the_product_writes_a_column_the_facets_come_from() -> None:
    """Writes that bypass Character.save(): none may set a FACET_FIELDS column (a new one
    must drop the team's CharacterFacets itself, and be added to the writers above)."""
    offenders = []
    for path in Path(settings.BASE_DIR).glob("*/**/*.py"):
        if any(part in {".venv", "tests", "migrations", "node_modules"} for part in path.parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"update", "bulk_update"}
            ):
                named = {k.arg for k in node.keywords if k.arg} | {
                    elt.value
                    for arg in node.args
                    if isinstance(arg, ast.List | ast.Tuple | ast.Set)
                    for elt in arg.elts
                    if isinstance(elt, ast.Constant)
                }
                if named & FACET_FIELDS:
                    offenders.append(f"{path.relative_to(settings.BASE_DIR)}:{node.lineno}")
    assert offenders == []


def test_stale_facets_heal_after_the_max_age(team: Any) -> None:
    """A write that bypassed save() (none does today) is seen after FACETS_MAX_AGE."""
    CharacterFactory(team=team, voice_type="MALE")
    selectors.facet_values(team)
    Character.objects.filter(team=team).update(voice_type="FEMALE")  # behind save()'s back
    assert selectors.facet_values(team)["voices"] == ["MALE"]
    CharacterFacets.objects.filter(team=team).update(
        computed_at=timezone.now() - selectors.FACETS_MAX_AGE - timedelta(seconds=1)
    )
    assert selectors.facet_values(team)["voices"] == ["FEMALE"]


def test_the_list_reads_stored_facets_with_the_cache_cold(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    """After a deploy or on another server (an empty cache), the filter options are read,
    not recomputed: the facets' scans of the characters are not among the list's queries."""
    member = make_member(Role.ADMIN)
    CharacterFactory(team=member.team, voice_type="MALE", language_codes=["fr-FR"])
    client.force_login(member.user)
    url = reverse("characters:character-list", args=[member.team.slug])
    client.get(url)
    cache.clear()
    with CaptureQueriesContext(connection) as captured:
        body = client.get(url).content.decode()
    assert '<option value="fr-FR">' in body
    scans = [q["sql"] for q in captured.captured_queries if "DISTINCT" in q["sql"].upper()]
    assert scans == []
