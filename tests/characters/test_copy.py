"""Copy to another key against the live sandbox: the same fields under another account, the
lineage on both pages, both sides audited, and the refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from characters import copying, errors
from characters.models import Revision
from teams.models import Membership, Role
from tests.characters.support import remote
from tests.support.characters import Key

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ("name", "voice_type", "backstory", "actions", "language_codes")


def test_copy_to_another_account_keeps_the_fields_and_the_lineage_and_audits_both_sides(
    editor: Membership,
    add_key: Callable[..., Key],
    create: Callable[..., Any],
    login: Callable[[Membership], Client],
) -> None:
    staging = add_key(editor, "Staging", account="staging")
    production = add_key(editor, "Production", account="production")
    source = create(key=staging, name="Raymond", language_codes=["fr-FR"]).character
    client = login(editor)

    response = client.post(
        reverse("bundles:copy", args=[editor.team.slug, source.pk]), {"key": str(production.pk)}
    )

    source.refresh_from_db()
    copy = source.copies.get()
    assert response["Location"] == reverse(
        "characters:character-detail", args=[editor.team.slug, copy.pk]
    )
    assert copy.bound_key_id == production.pk and copy.convai_id != source.convai_id
    assert copy.copied_from_revision == source.version
    for field in FIELDS:
        assert getattr(copy, field) == getattr(source, field), field
    assert remote(copy).owner_id != remote(source).owner_id
    assert remote(copy).backstory == remote(source).backstory
    assert copy.revisions.get().reason == Revision.Reason.COPIED

    made = AuditEvent.objects.get(action="character.create", target_id=copy.convai_id)
    assert made.details["copied_from"]["convai_id"] == source.convai_id
    assert made.details["copied_from"]["revision"] == source.version
    copied = AuditEvent.objects.get(action="character.copy", target_id=source.convai_id)
    assert copied.details["copy"]["convai_id"] == copy.convai_id
    assert copied.details["to_key"].startswith("Production")

    page = client.get(reverse("characters:character-detail", args=[editor.team.slug, copy.pk]))
    assert "Copied from" in page.content.decode()
    original = client.get(
        reverse("characters:character-detail", args=[editor.team.slug, source.pk])
    )
    assert "Copies:" in original.content.decode()


def test_copy_refuses_the_same_key_and_someone_elses_key(
    editor: Membership,
    editor_key: Key,
    make_member: Callable[..., Membership],
    add_key: Callable[..., Key],
    create: Callable[..., Any],
) -> None:
    source = create().character
    with pytest.raises(errors.KeyNotUsable):
        copying.copy_character(actor=editor, character_id=source.pk, api_key_id=editor_key.pk)
    other = make_member(Role.EDITOR)
    theirs = add_key(other, "Theirs")
    with pytest.raises(errors.KeyNotUsable):
        copying.copy_character(actor=editor, character_id=source.pk, api_key_id=theirs.pk)
    assert not source.copies.exists()
    assert AuditEvent.objects.filter(action="character.copy", outcome="failure").count() == 2


def test_a_viewer_may_not_copy(
    editor: Membership,
    create: Callable[..., Any],
    make_member: Callable[..., Membership],
    login: Callable[[Membership], Client],
) -> None:
    source = create().character
    viewer = make_member(Role.VIEWER)
    response = login(viewer).get(reverse("bundles:copy", args=[viewer.team.slug, source.pk]))
    assert response.status_code == 403
