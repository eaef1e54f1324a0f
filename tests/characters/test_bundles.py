"""Bundles against the live sandbox: export (byte-stable, streamed, audited), validation of
hostile files, preview categories, and the import job (round trip into another account, a
fault in the middle), with the role rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from characters import services
from characters.bundles.importing import preview_bundle, start_bundle_import
from characters.bundles.reading import MAX_DEPTH, parse_bundle, read_upload
from characters.bundles.schema import BundleInvalid
from characters.bundles.uploads import UploadGone, load_upload, upload_bundle
from characters.models import Character
from jobs.models import Job, JobItem
from sandbox.services import clear_faults, set_fault
from teams.models import Membership, Role
from tests.characters.bundle_support import document, entry, upload
from tests.characters.support import remote
from tests.jobs.support import fresh, run_worker
from tests.support.characters import Key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]


@pytest.fixture(autouse=True)
def uploads(settings: Any, tmp_path: Path) -> Path:
    """Each test keeps its uploads apart (team and user IDs repeat between tests)."""
    settings.VAR_DIR = tmp_path
    return tmp_path / "bundles"


FIELDS = ("name", "voice_type", "backstory", "actions", "language_codes")
HOSTILE_NAME = '<script>alert("x")</script> & <b>Bold</b>'


def export(client: Client, team_slug: str, query: str = "") -> bytes:
    response = client.get(reverse("bundles:export", args=[team_slug]) + query)
    assert response.status_code == 200, response
    assert response.streaming
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return b"".join(response.streaming_content)  # type: ignore[arg-type]


def token_of(response: Any) -> str:
    assert response.status_code == 302, response.content.decode()[:2000]
    return str(response["Location"].split("/bundles/")[1].split("/")[0])


# --- Export --------------------------------------------------------------------------------------


def test_export_is_byte_identical_sorted_streamed_and_audited(
    editor: Membership, create: Callable[..., Any], login: Callable[[Membership], Client]
) -> None:
    for name in ("Zed", "Amy", "Mo"):
        create(name=name, language_codes=["fr-FR"])
    client = login(editor)

    first = export(client, editor.team.slug)
    second = export(client, editor.team.slug)

    assert first == second
    text = first.decode()
    doc = json.loads(text)
    # Exactly the canonical form: sorted keys, indent 2, trailing newline, no timestamp.
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert doc["schema"] == "convai-admin/bundle@1"
    assert "exported_at" not in text
    ids = [c["convai_id"] for c in doc["characters"]]
    assert ids == sorted(ids) and len(ids) == 3
    stored = Character.objects.get(convai_id=ids[0])
    assert doc["characters"][0]["snapshot"] == stored.snapshot
    assert doc["characters"][0]["version"] == stored.version
    events = AuditEvent.objects.filter(action="character.export").order_by("id")
    assert [e.details["count"] for e in events] == [3, 3]
    assert events[0].details["filter"] == {}


def test_export_of_a_filtered_list_and_of_one_character(
    editor: Membership, create: Callable[..., Any], login: Callable[[Membership], Client]
) -> None:
    create(name="Raymond", voice_type="MALE")
    ada = create(name="Ada", voice_type="FEMALE").character
    client = login(editor)

    doc = json.loads(export(client, editor.team.slug, "?voice=FEMALE"))
    assert [c["name"] for c in doc["characters"]] == ["Ada"]
    assert doc["selection"] == {"voice": "FEMALE"}

    one = client.get(reverse("bundles:export-one", args=[editor.team.slug, ada.pk]))
    single = json.loads(b"".join(one.streaming_content))  # type: ignore[arg-type]
    assert single["selection"] == {"character": ada.convai_id}
    event = AuditEvent.objects.filter(action="character.export").latest("id")
    assert event.target_id == ada.convai_id and event.details["count"] == 1


def test_a_viewer_may_not_export_or_import(
    make_member: Callable[..., Membership], sandbox: str, login: Callable[[Membership], Client]
) -> None:
    viewer = make_member(Role.VIEWER)
    client = login(viewer)
    assert client.get(reverse("bundles:export", args=[viewer.team.slug])).status_code == 403
    assert client.get(reverse("bundles:import", args=[viewer.team.slug])).status_code == 403
    denied = AuditEvent.objects.filter(action="character.export", outcome="denied")
    assert denied.count() == 1


# --- Validation ---------------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return document([entry(snapshot=json.loads("[" * depth + "]" * depth))])


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty"),
        (b"\xff\xfe not utf-8", "UTF-16"),
        (b'{"schema": "\xc3("}', "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a Convai Admin bundle"),
        (json.dumps({"schema": "other/thing@1", "characters": []}).encode(), "not a Convai"),
        (json.dumps({"schema": "convai-admin/bundle@2"}).encode(), "bundle@2"),
        (b'{"schema": "convai-admin/bundle@1", "schema": "x"}', "appears twice"),
        (b"[" * 100_000 + b"]" * 100_000, "not a Convai Admin bundle"),
        (b'{"schema": "convai-admin/bundle@1", "characters": ' + b"[" * 100_000, "nested more"),
        (nested(40), "nested more than"),
        (document([entry(name=5)]), "“name”: This must be text."),
        (document([entry(actions="Wave")]), "“actions”: This must be a list"),
        (document([entry(backstory="x" * 10_001)]), "The backstory has 10,001 characters"),
        (document([entry(language_codes=["english!"])]), "is not a language code"),
        (document([entry(convai_id="../etc")]), "“convai_id”"),
        (document([entry(name="Nul\x00")]), "“name”"),
        (document([entry(version="3")]), "“version”"),
        (document([entry(extra=1)]), "unknown key “extra”"),
        (document([entry(), entry(name="Twin")]), "also character 1"),
        (document([]), "no characters"),
        (b'{"schema": "convai-admin/bundle@1", "characters": [NaN]}', "not valid JSON"),
    ],
)
def test_a_bad_file_is_refused_as_a_whole_with_a_clear_message(data: bytes, says: str) -> None:
    with pytest.raises(BundleInvalid) as refused:
        parse_bundle(data)
    assert says in refused.value.message
    assert refused.value.message.endswith("Nothing was changed.")


def test_a_50_mb_upload_is_refused_before_it_is_read_and_nothing_is_kept(
    editor: Membership, editor_key: Key, login: Callable[[Membership], Client], uploads: Path
) -> None:
    big = SimpleUploadedFile("big.json", b" " * (50 * 1024 * 1024), "application/json")
    with pytest.raises(BundleInvalid) as refused:
        read_upload(big)
    assert "it is 50.0 MB; a bundle may be at most 20.0 MB" in refused.value.message

    client = login(editor)
    response = upload(client, editor.team.slug, b" " * (50 * 1024 * 1024), editor_key)
    assert response.status_code == 413  # refused on Content-Length (convai_admin.middleware)
    assert "50.0 MB" in response.content.decode()
    assert not [path for path in uploads.glob("*") if path.name != ".lock"]
    assert not Job.objects.exists()


def test_html_in_fields_is_kept_as_text_and_escaped_on_the_preview(
    editor: Membership,
    editor_key: Key,
    add_key: Callable[..., Key],
    login: Callable[[Membership], Client],
) -> None:
    client = login(editor)
    data = document([entry(name=HOSTILE_NAME, backstory="<img src=x onerror=alert(1)>")])
    token = token_of(upload(client, editor.team.slug, data, editor_key))
    page = client.get(
        reverse("bundles:preview", args=[editor.team.slug, token]) + f"?key={editor_key.pk}"
    ).content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert '<script>alert("x")' not in page

    response = client.post(
        reverse("bundles:preview", args=[editor.team.slug, token]), {"key": str(editor_key.pk)}
    )
    assert response.status_code == 302
    run_worker()
    made = Character.objects.get(team=editor.team)
    assert made.name == HOSTILE_NAME
    assert remote(made).backstory == "<img src=x onerror=alert(1)>"
    detail = client.get(reverse("characters:character-detail", args=[editor.team.slug, made.pk]))
    assert '<script>alert("x")' not in detail.content.decode()


def test_preview_and_confirm_never_fail_on_any_content_that_passed_validation(
    editor: Membership, editor_key: Key, login: Callable[[Membership], Client]
) -> None:
    """The edge of every rule, accepted by the upload, then through the preview page, the
    confirmation and the job: pages answer 200/302, every item ends with a message."""
    deep: Any = "bottom"
    for _ in range(MAX_DEPTH - 4):  # document, characters, character, snapshot
        deep = [deep]
    edgy = [
        entry(
            "edge-astral",
            name="🎮" * 100,
            backstory=("عائشة \u200f\t“quoted” <b>x</b>\n" * 400)[:10_000],
            actions=[f"{n:03d}" + "ä" * 97 for n in range(100)],
            language_codes=["en-US", "ar"],
            snapshot={"deep": deep, "ünïcode": None, "big": 1e308, "flag": True, "": ""},
            version=0,
            copied_from={"convai_id": "x" * 64, "revision": None},
            pending_language_codes=[],
        ),
        entry("edge-rtl", name="עברית \u05d0 mixed ABC", voice_type="MALE", actions=[]),
        entry("e" * 64, name="x" * 100, backstory="", language_codes=[]),
    ]
    client = login(editor)
    response = upload(client, editor.team.slug, document(edgy, team="ü" * 100), editor_key)
    token = token_of(response)
    url = reverse("bundles:preview", args=[editor.team.slug, token])

    page = client.get(f"{url}?key={editor_key.pk}")
    assert page.status_code == 200
    assert "🎮" * 100 in page.content.decode()
    confirm = client.post(url, {"key": str(editor_key.pk)})
    assert confirm.status_code == 302
    run_worker()

    job = fresh(Job.objects.get())
    assert job.state == "done"
    assert job.done + job.failed == 3
    assert all(item.message for item in job.items.all())


def test_an_upload_is_only_usable_by_the_member_who_made_it(
    editor: Membership,
    editor_key: Key,
    make_member: Callable[..., Membership],
    add_key: Callable[..., Key],
    login: Callable[[Membership], Client],
) -> None:
    token = token_of(upload(login(editor), editor.team.slug, document([entry()]), editor_key))
    other = make_member(Role.EDITOR)
    with pytest.raises(UploadGone):
        load_upload(actor=other, token=token)
    with pytest.raises(UploadGone):
        load_upload(actor=editor, token="../../etc/passwd")


# --- Round trip, preview, apply ------------------------------------------------------------------


def test_round_trip_into_another_account_reproduces_every_character_field_for_field(
    editor: Membership,
    add_key: Callable[..., Key],
    create: Callable[..., Any],
    login: Callable[[Membership], Client],
) -> None:
    staging = add_key(editor, "Staging", account="staging")
    production = add_key(editor, "Production", account="production")
    originals = [
        create(key=staging, name="Raymond", language_codes=["fr-FR", "de-DE"]).character,
        create(key=staging, name=HOSTILE_NAME, backstory="Line 1\nLine 2 — ünïcode ✓").character,
        create(key=staging, name="Ada", voice_type="FEMALE", actions=[]).character,
    ]
    client = login(editor)
    data = export(client, editor.team.slug)
    token = token_of(upload(client, editor.team.slug, data, production))

    preview = preview_bundle(
        actor=editor,
        api_key_id=production.pk,
        bundle=load_upload(actor=editor, token=token)[0],
    )
    assert (preview.creates, preview.updates, preview.skips) == (3, 0, 0)
    response = client.post(
        reverse("bundles:preview", args=[editor.team.slug, token]), {"key": str(production.pk)}
    )
    job = Job.objects.get()
    assert response["Location"] == reverse("jobs:job-detail", args=[editor.team.slug, job.pk])
    run_worker()

    job = fresh(job)
    assert (job.state, job.done, job.failed, job.percent) == ("done", 3, 0, 100)
    copies = Character.objects.filter(team=editor.team, bound_key=production.api_key)
    assert copies.count() == 3
    for original in originals:
        copy = copies.get(name=original.name)
        assert copy.convai_id != original.convai_id
        for field in FIELDS:
            assert getattr(copy, field) == getattr(original, field), field
        theirs, ours = remote(copy), remote(original)
        assert (theirs.character_name, theirs.backstory, theirs.voice_type) == (
            ours.character_name,
            ours.backstory,
            ours.voice_type,
        )
        assert theirs.owner_id != ours.owner_id
    # Audited: the start and finish of the import, and a create per character.
    phases = AuditEvent.objects.filter(action="character.import_bundle").order_by("id")
    assert [e.details["phase"] for e in phases] == ["start", "finish"]
    assert phases[1].details["done"] == 3
    creates = AuditEvent.objects.filter(
        action="character.create", origin=f"task import_bundle #{job.pk}"
    )
    assert creates.count() == 3
    # The upload is gone once every item is done.
    with pytest.raises(UploadGone):
        load_upload(actor=editor, token=token)


def test_preview_creates_updates_and_skips_and_the_job_applies_them(
    editor: Membership,
    editor_key: Key,
    create: Callable[..., Any],
) -> None:
    same = create(name="Same").character
    changed = create(name="Changed").character
    bundle_data = document(
        [
            entry(same.convai_id, **{f: getattr(same, f) for f in FIELDS}),
            entry(
                changed.convai_id,
                **{**{f: getattr(changed, f) for f in FIELDS}, "backstory": "New."},
            ),
            entry("not-owned-anywhere", name="Fresh"),
        ]
    )
    token = upload_bundle(
        actor=editor, api_key_id=editor_key.pk, upload=SimpleUploadedFile("b.json", bundle_data)
    ).token
    bundle, _ = load_upload(actor=editor, token=token)

    preview = preview_bundle(actor=editor, api_key_id=editor_key.pk, bundle=bundle)

    plans = {row.entry.name: (row.plan, row.changed) for row in preview.rows}
    assert plans == {
        "Same": ("skip", ()),
        "Changed": ("update", ("Backstory",)),
        "Fresh": ("create", ()),
    }
    job = start_bundle_import(actor=editor, api_key_id=editor_key.pk, token=token)
    assert job.total == 2
    run_worker()
    job = fresh(job)
    assert (job.done, job.skipped, job.failed) == (2, 0, 0)
    changed.refresh_from_db()
    assert changed.backstory == "New." and remote(changed).backstory == "New."
    assert Character.objects.filter(team=editor.team, name="Fresh").exists()
    update = AuditEvent.objects.get(action="character.update", target_id=changed.convai_id)
    assert update.details["changes"]["backstory"][1] == "New."


def test_a_fault_in_the_middle_fails_that_item_and_the_job_finishes_the_rest(
    editor: Membership,
    editor_key: Key,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.CONVAI_JOB_CONCURRENCY = 1  # the outage below is key-wide: one call at a time
    data = document([entry(f"id-{n}", name=f"Char {n}") for n in range(1, 5)])
    token = upload_bundle(
        actor=editor, api_key_id=editor_key.pk, upload=SimpleUploadedFile("b.json", data)
    ).token
    job = start_bundle_import(actor=editor, api_key_id=editor_key.pk, token=token)
    real = services.create_character
    calls = {"n": 0}

    def flaky(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # Convai is down for exactly this character
            set_fault(key_label=editor_key.sandbox_label, outage=True)
            try:
                return real(**kwargs)
            finally:
                clear_faults(key_label=editor_key.sandbox_label)
        return real(**kwargs)

    monkeypatch.setattr(services, "create_character", flaky)
    run_worker()

    job = fresh(job)
    assert (job.state, job.done, job.failed, job.percent) == ("done", 3, 1, 100)
    failed = job.items.get(state=JobItem.State.FAILED)
    assert failed.label == "Char 2" and failed.message
    assert not Character.objects.filter(name="Char 2").exists()
    assert Character.objects.filter(team=editor.team).count() == 3
    refused = AuditEvent.objects.get(action="character.create", outcome="failure")
    assert refused.target_label == "Char 2"
    # The upload stays? No: every item was processed, so it is removed.
    with pytest.raises(UploadGone):
        load_upload(actor=editor, token=token)


def test_characters_ticked_leave_out_are_left_out(
    editor: Membership, editor_key: Key, login: Callable[[Membership], Client]
) -> None:
    client = login(editor)
    data = document([entry("a-1", name="Keep"), entry("a-2", name="Leave")])
    token = token_of(upload(client, editor.team.slug, data, editor_key))
    client.post(
        reverse("bundles:preview", args=[editor.team.slug, token]),
        {"key": str(editor_key.pk), "skip": ["a-2"]},
    )
    job = Job.objects.get()
    assert [item.label for item in job.items.all()] == ["Keep"]
    assert job.kind == "import_bundle"


def test_a_resumed_import_never_creates_twice_what_the_dead_run_created(
    editor: Membership, editor_key: Key
) -> None:
    """The dead run's create committed (its operation is done) but its item result did not: the
    next run finds the operation by the item's token and records it, without a second create."""
    from sandbox.models import SandboxCharacter

    data = document([entry("not-owned", name="Only Once")])
    token = upload_bundle(
        actor=editor, api_key_id=editor_key.pk, upload=SimpleUploadedFile("b.json", data)
    ).token
    job = start_bundle_import(actor=editor, api_key_id=editor_key.pk, token=token)
    item = job.items.get()
    first = services.create_character(
        actor=editor,
        api_key_id=editor_key.pk,
        token=f"job-{job.pk}-item-{item.pk}",
        name="Only Once",
        voice_type="FEMALE",
        backstory="An engineer.",
        actions=["Wave"],
        language_codes=["en-US"],
    ).character

    run_worker()

    item.refresh_from_db()
    assert (item.state, item.local_id) == (JobItem.State.DONE, first.pk)
    assert "run before the resume" in item.message
    assert Character.objects.filter(team=editor.team, name="Only Once").count() == 1
    assert SandboxCharacter.objects.filter(character_name="Only Once").count() == 1


def test_a_bundle_of_5000_characters_is_confirmed_in_one_request(
    editor: Membership, editor_key: Key, login: Callable[[Membership], Client]
) -> None:
    """The confirm form sends exceptions, not one field per character: 5,000 characters (far
    over Django's 1,000 fields a request) start one job with all of them."""
    client = login(editor)
    data = document([entry(f"many-{n}", name=f"Many {n}") for n in range(5000)])
    token = token_of(upload(client, editor.team.slug, data, editor_key))
    page = client.get(
        reverse("bundles:preview", args=[editor.team.slug, token]), {"key": str(editor_key.pk)}
    )
    html = page.content.decode()
    assert 'name="offered"' not in html and 'name="take"' not in html
    assert html.count('name="skip"') == 5000
    response = client.post(
        reverse("bundles:preview", args=[editor.team.slug, token]),
        {"key": str(editor_key.pk), "skip": ["many-7"]},
    )
    assert response.status_code == 302
    job = Job.objects.get()
    assert job.total == 4999
