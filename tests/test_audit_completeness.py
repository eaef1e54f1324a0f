"""Every action of the product records exactly the expected audit event (issue 9, "Complete"):
accounts, teams, invitations, members, keys, characters (with copy to another key and
bundles), jobs, policy refusals and the audit log itself.

One table per area (accounts, teams, keys, characters, bundles, jobs, the audit log), each
area its own test case with its own world, its steps walked in order (each builds on the
previous ones) and each checked as its own sub-test: the action, then the events it must
add — action, outcome, actor, target (type, id, label), key used where a key was used — and
nothing else. Character, key and job actions go through the real services and
the live sandbox over HTTP; sign-in, sign-out and the audit page through the test client.
No event may carry a secret (a raw key, a password, an invitation token)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import User
from audit.context import audit_context
from audit.models import AuditEvent
from backups import archive as backup_archive
from backups.errors import BackupError
from backups.services import create_backup
from characters import binding as character_binding
from characters import copying as character_copying
from characters import drift
from characters import errors as character_errors
from characters import importing as character_importing
from characters import operations as character_operations
from characters import services as characters
from characters.bulk import importing
from characters.models import Character
from jobs import services as jobs
from jobs.models import Job
from keys import services as keys
from sandbox.models import SandboxCharacter
from teams import invitations, lifecycle, policy
from teams import services as teams
from teams.models import Invitation, Membership, Role, Team
from tests.factories import TEST_PASSWORD, MembershipFactory, UserFactory
from tests.jobs.support import run_worker, seed_remote
from tests.support.characters import BACKSTORY, Key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]

ANY = object()  # a field this row does not pin (e.g. a generated ID checked elsewhere)


@dataclass
class Expect:
    action: str
    actor: str | None  # a World attribute naming the acting user (None: no actor)
    target_type: str
    target_id: Any = ANY  # a value, a callable of the world, or ANY
    target_label: Any = ANY
    outcome: Any = "success"
    key_used: str | None = None  # a World attribute naming the Key whose label + last four
    team: bool = True  # in the world's team chain (False: the global chain)


@dataclass
class World:
    client: Client
    add_key: Callable[..., Key]
    team: Team
    owner: Membership
    admin: Membership
    editor: Membership
    viewer: Membership
    stash: dict[str, Any] = field(default_factory=dict)

    def user(self, name: str) -> User:
        value = getattr(self, name, None) or self.stash[name]
        return value.user if isinstance(value, Membership) else value


def key_used(key: Key) -> str:
    return character_operations.key_label(key.api_key)


# --- the actions ---------------------------------------------------------------------------


def sign_in(w: World) -> None:
    user = w.editor.user
    assert w.client.post(
        reverse("accounts:login"), {"login": user.username, "password": TEST_PASSWORD}
    ).status_code in (302, 303)


def sign_in_wrong(w: World) -> None:
    w.client.post(reverse("accounts:login"), {"login": w.viewer.user.username, "password": "wrong"})


def lock_out(w: World) -> None:
    # Four more failures reach the limit of five (the step before was the first); the fifth
    # is recorded as a failed sign-in, then as the lockout it causes.
    for _ in range(4):
        w.client.post(
            reverse("accounts:login"), {"login": w.viewer.user.username, "password": "wrong"}
        )


def sign_out(w: World) -> None:
    w.client.post(reverse("accounts:logout"))


def change_password(w: World) -> None:
    from accounts import services as accounts

    accounts.change_password(actor=w.editor.user, new_password="A new long passphrase 42")


def change_password_refused(w: World) -> None:
    from accounts import services as accounts

    accounts.record_password_change_refused(actor=w.editor.user, reason="wrong current password")


NEW_PASSWORD = "A new long passphrase 42"  # the editor's, since "password change"


def enrol_two_factor(w: World) -> None:
    from django.test import TestCase

    from tests.accounts.mfa_support import totp_code

    w.client.force_login(w.editor.user)
    secret = w.client.get(reverse("mfa_activate_totp")).context["form"].secret
    w.stash["totp_secret"] = secret
    with TestCase.captureOnCommitCallbacks(execute=True):  # allauth signals after commit
        w.client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})


def two_factor_wrong_code(w: World) -> None:
    phone = w.stash["phone"] = Client()
    phone.post(
        reverse("accounts:login"), {"login": w.editor.user.username, "password": NEW_PASSWORD}
    )
    phone.post(reverse("mfa_authenticate"), {"code": "000000"})


def recovery_code_sign_in(w: World) -> None:
    from allauth.mfa.models import Authenticator

    codes = Authenticator.objects.get(user=w.editor.user, type="recovery_codes").wrap()
    code = codes.get_unused_codes()[0]
    w.stash["phone"].post(reverse("mfa_authenticate"), {"code": code})


def remove_two_factor(w: World) -> None:
    w.client.post(reverse("mfa_deactivate_totp"))


def request_password_reset(w: World) -> None:
    from django.core import mail

    mail.outbox.clear()
    with override_settings(EMAIL_ENABLED=True):
        Client().post(reverse("account_reset_password"), {"email": w.editor.user.email})


def complete_password_reset(w: World) -> None:
    import re

    from django.core import mail

    link = re.search(r"https?://[^/\s]+(/\S+)", mail.outbox[-1].body).group(1)
    stranger = Client()
    form_url = stranger.get(link)["Location"]
    stranger.post(
        form_url, {"password1": "Reset long passphrase 7", "password2": "Reset long passphrase 7"}
    )


def create_team(w: World) -> None:
    w.stash["other_team"] = teams.create_team(actor=w.owner.user, name="Second studio")


def require_two_factor(w: World) -> None:
    from tests.accounts.mfa_support import enable_totp

    enable_totp(w.owner.user)
    teams.set_two_factor_requirement(actor=w.owner, required=True)


def stop_requiring_two_factor(w: World) -> None:
    teams.set_two_factor_requirement(actor=w.owner, required=False)


def rename_team(w: World) -> None:
    teams.rename_team(actor=w.owner, name="Renamed studio")


def invite(w: World) -> None:
    created = invitations.create_invitation(
        actor=w.admin, role=Role.EDITOR, email="new@example.com"
    )
    w.stash["invitation"] = created.invitation
    w.stash["token"] = created.token


def revoke_invitation(w: World) -> None:
    invitations.revoke_invitation(actor=w.admin, invitation_id=w.stash["invitation"].pk)


def accept_revoked(w: World) -> None:
    w.stash["newcomer"] = UserFactory.create(username="newcomer")
    with pytest.raises(Exception):  # noqa: B017 — whichever domain error; the event is the point
        invitations.accept_invitation(actor=w.stash["newcomer"], token=w.stash["token"])


def accept(w: World) -> None:
    created = invitations.create_invitation(actor=w.admin, role=Role.VIEWER)
    w.stash["invitation2"] = created.invitation
    w.stash["newcomer_membership"] = invitations.accept_invitation(
        actor=w.stash["newcomer"], token=created.token
    )


def change_role(w: World) -> None:
    teams.change_member_role(
        actor=w.admin, membership_id=w.stash["newcomer_membership"].pk, role=Role.EDITOR
    )


def unlock(w: World) -> None:
    teams.unlock_member(actor=w.admin, membership_id=w.viewer.pk)


def remove(w: World) -> None:
    w.stash["removed_pk"] = w.stash["newcomer_membership"].pk
    teams.remove_member(actor=w.admin, membership_id=w.stash["newcomer_membership"].pk)


def leave(w: World) -> None:
    w.stash["leaver"] = MembershipFactory.create(team=w.team, role=Role.VIEWER)
    w.stash["leaver_pk"] = w.stash["leaver"].pk
    teams.leave_team(actor=w.stash["leaver"])


def invite_by_email(w: World) -> None:
    created = invitations.create_invitation(actor=w.admin, role=Role.VIEWER, email="kim@ex.test")
    w.stash["emailed"] = created.invitation
    with override_settings(
        EMAIL_ENABLED=True, EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"
    ):
        invitations.email_invitation(
            actor=w.admin, invitation=created.invitation, link=f"https://x/{created.token}/"
        )


def create_team_refused(w: World) -> None:
    with override_settings(TEAM_CREATION="admins"), pytest.raises(policy.NotAllowed):
        teams.create_team(actor=w.viewer.user, name="Not allowed")


def _fresh(membership: Membership) -> Membership:
    return Membership.objects.select_related("team", "user").get(pk=membership.pk)


def transfer(w: World) -> None:
    lifecycle.transfer_ownership(actor=_fresh(w.owner), membership_id=w.admin.pk)


def archive(w: World) -> None:
    lifecycle.archive_team(actor=_fresh(w.admin))  # the Owner since the transfer


def refused_while_archived(w: World) -> None:
    with pytest.raises(policy.NotAllowed):
        teams.rename_team(actor=_fresh(w.admin), name="Frozen")


def unarchive(w: World) -> None:
    lifecycle.unarchive_team(actor=_fresh(w.admin))


def delete_team(w: World) -> None:
    lifecycle.delete_team(actor=_fresh(w.admin))


def add_editor_key(w: World) -> None:
    w.stash["editor_key"] = w.add_key(w.editor, "Editor key")


def add_admin_key(w: World) -> None:
    # Same sandbox account as the editor's key: it can reach the editor's characters (rebind).
    from sandbox.models import SandboxKey
    from sandbox.services import hash_key

    account = SandboxKey.objects.get(key_hash=hash_key(w.stash["editor_key"].raw)).account
    w.stash["admin_key"] = w.add_key(w.admin, "Admin key", account=account.name)


def verify_key(w: World) -> None:
    keys.verify_api_key(actor=w.editor.user, api_key_id=w.stash["editor_key"].pk)


def refresh_usage(w: World) -> None:
    keys.refresh_api_key_usage(actor=w.editor.user, api_key_id=w.stash["editor_key"].pk)


def create_character(w: World) -> None:
    saved = characters.create_character(
        actor=w.editor,
        api_key_id=w.stash["editor_key"].pk,
        name="Raymond",
        voice_type="MALE",
        backstory=BACKSTORY,
        actions=["Wave"],
        language_codes=[],
    )
    w.stash["character"] = saved.character


def character(w: World) -> Character:
    found: Character = w.stash["character"]
    found.refresh_from_db()
    return found


def update_character(w: World) -> None:
    c = character(w)
    characters.update_character(
        actor=w.editor,
        character_id=c.pk,
        expected_version=c.version,
        fields={"backstory": "A new backstory."},
    )


def drift_overwrite(w: World) -> None:
    c = character(w)
    SandboxCharacter.objects.filter(character_id=c.convai_id).update(
        backstory="Edited in the playground."
    )
    characters.update_character(
        actor=w.editor,
        character_id=c.pk,
        expected_version=c.version,
        fields={"backstory": "Ours again."},
        overwrite_drift=True,
    )


def timed_out_update(w: World) -> None:
    """Convai does not answer in time: the write may have happened, the outcome is unknown."""
    from convai.client import ConvaiClient
    from sandbox.services import clear_faults, set_fault

    monkeypatch: pytest.MonkeyPatch = w.stash["monkeypatch"]
    real_update = ConvaiClient.update_character
    label = w.stash["editor_key"].sandbox_label

    def slow_update(self: ConvaiClient, *args: Any, **kwargs: Any) -> None:
        self.timeout = (2.0, 0.2)
        set_fault(key_label=label, latency_ms=500)
        real_update(self, *args, **kwargs)

    c = character(w)
    with monkeypatch.context() as patch:
        patch.setattr(ConvaiClient, "update_character", slow_update)
        with pytest.raises(character_errors.CharacterError):
            characters.update_character(
                actor=w.editor,
                character_id=c.pk,
                expected_version=c.version,
                fields={"backstory": "Sent, never confirmed."},
            )
    clear_faults(key_label=label)


def sync(w: World) -> None:
    c = character(w)
    SandboxCharacter.objects.filter(character_id=c.convai_id).update(character_name="Ray")
    characters.take_remote_version(actor=w.editor, character_id=c.pk)


def drift_detected(w: World) -> None:
    c = character(w)
    SandboxCharacter.objects.filter(character_id=c.convai_id).update(character_name="Ray Again")
    with override_settings(CONVAI_ADMIN_DRIFT_CHECK_MINUTES=30):
        drift.check_drift()


def restore(w: World) -> None:
    c = character(w)
    characters.restore_revision(
        actor=w.editor, character_id=c.pk, number=1, expected_version=c.version
    )


def viewer_update_denied(w: World) -> None:
    c = character(w)
    with pytest.raises(Exception):  # noqa: B017 — the policy's refusal; the event is the point
        characters.update_character(
            actor=w.viewer, character_id=c.pk, expected_version=c.version, fields={"name": "X"}
        )


def viewer_role_change_denied(w: World) -> None:
    with pytest.raises(Exception):  # noqa: B017
        teams.change_member_role(actor=w.viewer, membership_id=w.editor.pk, role=Role.ADMIN)


def clone(w: World) -> None:
    saved = character_copying.clone_character(
        actor=w.editor, character_id=character(w).pk, new_name="Raymond copy"
    )
    w.stash["clone"] = saved.character


def rebind(w: World) -> None:
    character_binding.rebind_character(
        actor=w.admin, character_id=character(w).pk, api_key_id=w.stash["admin_key"].pk
    )


def import_one(w: World) -> None:
    remote = seed_remote(w.stash["editor_key"], 1, prefix="Imported")[0]
    w.stash["imported_id"] = remote.character_id
    character_importing.import_character(
        actor=w.editor, api_key_id=w.stash["editor_key"].pk, convai_id=remote.character_id
    )


def delete_clone(w: World) -> None:
    clone = w.stash["clone"]
    characters.delete_character(actor=w.editor, character_id=clone.pk, confirm_name=clone.name)


def add_second_editor_key(w: World) -> None:
    w.stash["editor_key2"] = w.add_key(w.editor, "Production key")  # another Convai account


def copy_to_another_key(w: World) -> None:
    from characters import copying

    saved = copying.copy_character(
        actor=w.editor, character_id=character(w).pk, api_key_id=w.stash["editor_key2"].pk
    )
    w.stash["copy"] = saved.character


def bundle_export(w: World) -> None:
    from characters.bundles.exporting import export_characters

    exported = export_characters(actor=w.editor)
    w.stash["bundle"] = b"".join(exported.chunks)


def bundle_import(w: World) -> None:
    from characters.bundles.importing import start_bundle_import
    from characters.bundles.uploads import upload_bundle

    document = json.loads(w.stash["bundle"])
    raymond = next(c for c in document["characters"] if c["convai_id"] == character(w).convai_id)
    raymond["backstory"] = "Changed in the bundle."
    document["characters"] = [raymond]
    data = json.dumps(document).encode()
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("studio.json", data, "application/json")
    token = upload_bundle(actor=w.editor, api_key_id=w.stash["editor_key"].pk, upload=upload).token
    job = start_bundle_import(actor=w.editor, api_key_id=w.stash["editor_key"].pk, token=token)
    w.stash["bundle_job"] = job
    run_worker()


def start_and_finish_job(w: World) -> None:
    remote = seed_remote(w.stash["editor_key"], 2, prefix="Batch")
    job = importing.start_import_all(
        actor=w.editor,
        api_key_id=w.stash["editor_key"].pk,
        convai_ids=[c.character_id for c in remote],
    )
    w.stash["job"] = job
    run_worker()


def start_and_cancel_job(w: World) -> None:
    remote = seed_remote(w.stash["editor_key"], 2, prefix="Later")
    job = importing.start_import_all(
        actor=w.editor,
        api_key_id=w.stash["editor_key"].pk,
        convai_ids=[c.character_id for c in remote],
    )
    w.stash["job2"] = job
    jobs.cancel_job(actor=w.editor, job_id=job.pk)


def revoke_key(w: World) -> None:
    keys.revoke_api_key(actor=w.admin.user, api_key_id=w.stash["admin_key"].pk)


def register_build(w: World) -> None:
    from builds import services as builds

    issued = builds.register_build(
        actor=w.admin,
        settings_=builds.BuildSettings(
            name="Demo build",
            api_key_id=w.stash["admin_key"].pk,
            allowed_origins=["https://play.example.com"],
            burst_per_minute=1,
            per_hour=10,
            expires_at=None,
        ),
    )
    w.stash["build"], w.stash["build_credential"] = issued.build, issued.credential


def _ask_build(w: World, credential: str) -> int:
    url = reverse("builds:token", args=[w.stash["build"].pk])
    return int(w.client.get(url, headers={"X-Convai-Admin-Build": credential}).status_code)


def update_build(w: World) -> None:
    from builds import services as builds

    builds.update_build(
        actor=w.admin,
        build_id=w.stash["build"].pk,
        settings_=builds.BuildSettings(
            name="Demo build 2",
            api_key_id=w.stash["admin_key"].pk,
            allowed_origins=[],
            burst_per_minute=1,
            per_hour=10,
            expires_at=None,
        ),
    )


def rotate_build(w: World) -> None:
    from datetime import timedelta

    from builds import services as builds

    issued = builds.rotate_credential(
        actor=w.admin, build_id=w.stash["build"].pk, overlap=timedelta(0)
    )
    w.stash["build_credential"] = issued.credential


def mint_build_token(w: World) -> None:
    assert _ask_build(w, w.stash["build_credential"]) == 200


def refuse_build_token(w: World) -> None:
    assert _ask_build(w, w.stash["build_credential"]) == 429  # the burst of 1 is spent
    assert _ask_build(w, w.stash["build_credential"]) == 429  # the same refusal: once a minute


def revoke_build(w: World) -> None:
    from builds import services as builds

    builds.revoke_build(actor=w.admin, build_id=w.stash["build"].pk)
    builds.revoke_minted_tokens(w.stash["build"].pk)  # what the queued task does


def audit_export(w: World) -> None:
    w.client.force_login(w.admin.user)
    response = w.client.get(reverse("audit:export-jsonl", args=[w.team.slug]))
    b"".join(response.streaming_content)


def audit_verify(w: World) -> None:
    w.client.post(reverse("audit:verify", args=[w.team.slug]))


def backup(w: World) -> None:
    w.stash["monkeypatch"].setattr(backup_archive, "SCRYPT_N", 2**14)
    with tempfile.TemporaryDirectory() as directory, audit_context(origin="command backup"):
        create_backup(destination=Path(directory), passphrase="correct horse battery staple")


def backup_refused(w: World) -> None:
    with (
        tempfile.TemporaryDirectory() as directory,
        audit_context(origin="command backup"),
        pytest.raises(BackupError),
    ):
        create_backup(destination=Path(directory), passphrase="too short")


def job_id(name: str) -> Callable[[World], str]:
    return lambda w: str(w.stash[name].pk)


def pk_of(name: str) -> Callable[[World], str]:
    return lambda w: str(w.stash[name].pk)


def convai_id(name: str) -> Callable[[World], str]:
    return lambda w: w.stash[name].convai_id


E = Expect
Step = tuple[str, Callable[[World], None], list[Expect]]

# Accounts (the global chain: no team)
ACCOUNT_STEPS: list[Step] = [
    ("sign in", sign_in, [E("auth.sign_in", "editor", "user", team=False)]),
    ("sign out", sign_out, [E("auth.sign_out", "editor", "user", team=False)]),
    (
        "sign in, wrong password",
        sign_in_wrong,
        [E("auth.sign_in", None, "user", "", ANY, "failure", team=False)],
    ),
    (
        "lockout after five failures",
        lock_out,
        [E("auth.sign_in", None, "user", "", ANY, "failure", team=False)] * 4
        + [E("auth.lockout", None, "user", "", ANY, "denied", team=False)],
    ),
    (
        "password change",
        change_password,
        [E("account.password_changed", "editor", "user", team=False)],
    ),
    (
        "password change refused",
        change_password_refused,
        [E("account.password_changed", "editor", "user", outcome="failure", team=False)],
    ),
    (
        "two-factor enrolment",
        enrol_two_factor,
        [
            E("auth.sign_in", "editor", "user", team=False),
            E("mfa.enrolled", "editor", "authenticator", target_label="totp", team=False),
            E("mfa.enrolled", "editor", "authenticator", ANY, "recovery_codes", team=False),
        ],
    ),
    (
        "two-factor wrong code",
        two_factor_wrong_code,
        [E("mfa.code_failed", "editor", "authenticator", ANY, "totp", "failure", team=False)],
    ),
    (
        "recovery code sign-in",
        recovery_code_sign_in,
        [
            E(
                "mfa.recovery_code_used",
                "editor",
                "authenticator",
                ANY,
                "recovery_codes",
                team=False,
            ),
            E("auth.sign_in", "editor", "user", team=False),
        ],
    ),
    (
        "two-factor removal ends the other sessions",
        remove_two_factor,
        [
            E("mfa.removed", "editor", "authenticator", ANY, "totp", team=False),
            E("account.sessions_ended", "editor", "user", team=False),
            E("mfa.removed", "editor", "authenticator", ANY, "recovery_codes", team=False),
        ],
    ),
    (
        "password reset request",
        request_password_reset,
        [E("account.password_reset_requested", None, "user", team=False)],
    ),
    (
        "password reset",
        complete_password_reset,
        [
            E("account.password_reset", "editor", "user", team=False),
            E("account.sessions_ended", "editor", "user", team=False),
        ],
    ),
]

# Teams, invitations, members
TEAM_STEPS: list[Step] = [
    # In the new team's own chain.
    ("team create", create_team, [E("team.created", "owner", "team", pk_of("other_team"))]),
    ("team rename", rename_team, [E("team.renamed", "owner", "team", target_label=ANY)]),
    ("invitation create", invite, [E("invitation.created", "admin", "invitation")]),
    ("invitation revoke", revoke_invitation, [E("invitation.revoked", "admin", "invitation")]),
    (
        "invitation refused (revoked)",
        accept_revoked,
        [E("invitation.refused", "newcomer", "invitation", outcome="denied")],
    ),
    (
        "invitation accept",
        accept,
        [
            E("invitation.created", "admin", "invitation"),
            E("invitation.accepted", "newcomer", "invitation"),
        ],
    ),
    (
        "member role change",
        change_role,
        [
            E(
                "member.role_changed",
                "admin",
                "membership",
                lambda w: str(w.stash["newcomer_membership"].pk),
            )
        ],
    ),
    (
        "member unlock",
        unlock,
        [E("member.unlocked", "admin", "membership", lambda w: str(w.viewer.pk))],
    ),
    (
        "member remove",
        remove,
        [E("member.removed", "admin", "membership", lambda w: str(w.stash["removed_pk"]))],
    ),
    (
        "member leave",
        leave,
        [E("member.left", "leaver", "membership", lambda w: str(w.stash["leaver_pk"]))],
    ),
    (
        "two-factor required of members",
        require_two_factor,
        [E("team.two_factor_required", "owner", "team", lambda w: str(w.team.pk))],
    ),
    (
        "two-factor no longer required",
        stop_requiring_two_factor,
        [E("team.two_factor_required", "owner", "team", lambda w: str(w.team.pk))],
    ),
    (
        "invitation emailed",
        invite_by_email,
        [
            E("invitation.created", "admin", "invitation", pk_of("emailed")),
            E("invitation.emailed", "admin", "invitation", pk_of("emailed")),
        ],
    ),
    (
        "team create refused (TEAM_CREATION=admins)",
        create_team_refused,
        [E("team.created", "viewer", "team", outcome="denied", team=False)],
    ),
    (
        "ownership transfer",
        transfer,
        [E("team.ownership_transferred", "owner", "membership", lambda w: str(w.admin.pk))],
    ),
    ("team archive", archive, [E("team.archived", "admin", "team", lambda w: str(w.team.pk))]),
    (
        "change refused while archived",
        refused_while_archived,
        [E("team.renamed", "admin", "team", outcome="denied")],
    ),
    (
        "team unarchive",
        unarchive,
        [E("team.unarchived", "admin", "team", lambda w: str(w.team.pk))],
    ),
    ("team delete", delete_team, [E("team.deleted", "admin", "team", lambda w: str(w.team.pk))]),
]

# API keys (personal: the key's events carry no team)
KEY_STEPS: list[Step] = [
    (
        "api key added (verified, usage checked)",
        add_editor_key,
        [E("api_key.added", "editor", "api_key", team=False, key_used="editor_key")],
    ),
    (
        "second api key added",
        add_admin_key,
        [E("api_key.added", "admin", "api_key", team=False, key_used="admin_key")],
    ),
    (
        "api key verified",
        verify_key,
        [E("api_key.verified", "editor", "api_key", team=False, key_used="editor_key")],
    ),
    (
        "api key usage checked",
        refresh_usage,
        [E("api_key.usage_checked", "editor", "api_key", team=False, key_used="editor_key")],
    ),
]

# Characters
CHARACTER_STEPS: list[Step] = [
    (
        "character create",
        create_character,
        [
            E(
                "character.create",
                "editor",
                "character",
                convai_id("character"),
                "Raymond",
                key_used="editor_key",
            )
        ],
    ),
    (
        "character update",
        update_character,
        [
            E(
                "character.update",
                "editor",
                "character",
                convai_id("character"),
                "Raymond",
                key_used="editor_key",
            )
        ],
    ),
    (
        "drift overwrite",
        drift_overwrite,
        [
            E(
                "character.update",
                "editor",
                "character",
                convai_id("character"),
                "Raymond",
                key_used="editor_key",
            )
        ],
    ),
    (
        "character update timed out",
        timed_out_update,
        [
            E(
                "character.update",
                "editor",
                "character",
                convai_id("character"),
                "Raymond",
                outcome="unknown",
                key_used="editor_key",
            )
        ],
    ),
    (
        "a change made in Convai, found by the periodic drift check (the system acts)",
        drift_detected,
        [E("character.drift_detected", None, "character", convai_id("character"))],
    ),
    (
        "character sync",
        sync,
        [
            E(
                "character.sync",
                "editor",
                "character",
                convai_id("character"),
                "Ray",
                key_used="editor_key",
            )
        ],
    ),
    (
        "character restore",
        restore,
        [
            E(
                "character.restore",
                "editor",
                "character",
                convai_id("character"),
                ANY,
                key_used="editor_key",
            )
        ],
    ),
    (
        "a Viewer's update, refused by the policy",
        viewer_update_denied,
        [
            E(
                "character.update",
                "viewer",
                "character",
                convai_id("character"),
                outcome="denied",
            )
        ],
    ),
    (
        "a Viewer's role change, refused by the policy",
        viewer_role_change_denied,
        [E("member.role_changed", "viewer", ANY, outcome="denied")],
    ),
    (
        "character clone",
        clone,
        [E("character.clone", "editor", "character", convai_id("clone"), key_used="editor_key")],
    ),
    (
        "character rebind",
        rebind,
        [
            E(
                "character.rebind",
                "admin",
                "character",
                convai_id("character"),
                key_used="admin_key",
            )
        ],
    ),
    (
        "character import",
        import_one,
        [
            E(
                "character.import",
                "editor",
                "character",
                lambda w: w.stash["imported_id"],
                "Imported 001",
                key_used="editor_key",
            )
        ],
    ),
    (
        "character delete",
        delete_clone,
        [
            E(
                "character.delete",
                "editor",
                "character",
                convai_id("clone"),
                "Raymond copy",
                key_used="editor_key",
            )
        ],
    ),
]

# Copy to another key, bundles
BUNDLE_STEPS: list[Step] = [
    (
        "second key of another account",
        add_second_editor_key,
        [E("api_key.added", "editor", "api_key", team=False, key_used="editor_key2")],
    ),
    (
        "copy to another key",
        copy_to_another_key,
        [
            E("character.create", "editor", "character", convai_id("copy"), key_used="editor_key2"),
            E(
                "character.copy",
                "editor",
                "character",
                convai_id("character"),
                key_used="editor_key2",
            ),
        ],
    ),
    (
        "bundle export",
        bundle_export,
        [E("character.export", "editor", "team", lambda w: w.team.slug)],
    ),
    # The update goes through the character's bound key: the Admin's since the rebind.
    (
        "bundle import",
        bundle_import,
        [
            E("character.bundle_upload", "editor", "bundle", target_label="studio.json"),
            E("job.start", "editor", "job", job_id("bundle_job")),
            E("character.import_bundle", "editor", "job", job_id("bundle_job")),
            E(
                "character.update",
                "editor",
                "character",
                convai_id("character"),
                key_used="admin_key",
            ),
            E("character.import_bundle", "editor", "job", job_id("bundle_job")),
            E("job.finish", "editor", "job", job_id("bundle_job")),
        ],
    ),
]

# Jobs
JOB_STEPS: list[Step] = [
    (
        "job start and finish",
        start_and_finish_job,
        [E("job.start", "editor", "job", job_id("job"))]
        # One event per item; its outcome is the item's (the sandbox may answer 500 when the
        # in-memory test database is busy with the worker), the job's events are the point.
        + [E("character.import", "editor", "character", outcome=ANY, key_used="editor_key")] * 2
        + [E("job.finish", "editor", "job", job_id("job"))],
    ),
    (
        "job start and cancel",
        start_and_cancel_job,
        [
            E("job.start", "editor", "job", job_id("job2")),
            E("job.cancel", "editor", "job", job_id("job2")),
        ],
    ),
    (
        "api key revoked",
        revoke_key,
        [E("api_key.revoked", "admin", "api_key", team=False, key_used="admin_key")],
    ),
]

# Game builds (the token broker): the Admin's operations, then what the game's requests record
BUILD_STEPS: list[Step] = [
    (
        "build register",
        register_build,
        [E("build.registered", "admin", "build", target_label="Demo build", key_used="admin_key")],
    ),
    (
        "build update",
        update_build,
        [E("build.updated", "admin", "build", target_label="Demo build 2")],
    ),
    ("build rotate", rotate_build, [E("build.credential_rotated", "admin", "build")]),
    (
        "build token minted",
        mint_build_token,
        [E("build.token_minted", None, "build", key_used="admin_key")],
    ),
    (
        "build token refused",
        refuse_build_token,
        [E("build.token_refused", None, "build", outcome="denied")],
    ),
    (
        "build revoke",
        revoke_build,
        [E("build.revoked", "admin", "build"), E("build.tokens_revoked", None, "build")],
    ),
]

# The audit log itself
AUDIT_STEPS: list[Step] = [
    (
        "audit export",
        audit_export,
        [E("auth.sign_in", "admin", "user", team=False), E("audit.exported", "admin", "audit")],
    ),
    ("audit verify", audit_verify, [E("audit.verified", "admin", "audit")]),
]

# Backups (the global chain; no actor: an operator's command). A restore's event goes into the
# restored database: tests/backups/ checks it there.
BACKUP_STEPS: list[Step] = [
    ("backup", backup, [E("backup.created", None, "backup", team=False)]),
    (
        "backup refused",
        backup_refused,
        [E("backup.created", None, "backup", team=False, outcome="failure")],
    ),
]


def _value(expected: Any, world: World) -> Any:
    return expected(world) if callable(expected) else expected


def _compare(world: World, expect: Expect, event: AuditEvent | None) -> list[str]:
    if event is None:
        return [f"missing {expect.action}"]
    got: dict[str, Any] = {
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor_id,
        "target_type": event.target_type,
        "team": event.team_id is not None,
    }
    want: dict[str, Any] = {
        "action": expect.action,
        "outcome": expect.outcome,
        "actor": world.user(expect.actor).pk if expect.actor else None,
        "target_type": expect.target_type,
        "team": expect.team,
    }
    if expect.target_id is not ANY:
        got["target_id"], want["target_id"] = event.target_id, _value(expect.target_id, world)
    if expect.target_label is not ANY:
        got["target_label"] = event.target_label
        want["target_label"] = _value(expect.target_label, world)
    if expect.key_used:
        details = event.details or {}
        if event.target_type == "api_key":  # a key's own events: its label and last four
            got["key_used"] = f"{event.target_label} (…{details.get('last_four')})"
        else:
            got["key_used"] = details.get("key_used")
        want["key_used"] = key_used(world.stash[expect.key_used])
    if event.actor_id is not None:
        got["actor_label"], want["actor_label"] = event.actor_label, ANY
    return [
        f"{name}: expected {want[name]!r}, got {got.get(name)!r} ({event.action} {event.details})"
        for name in want
        if want[name] is not ANY and got.get(name) != want[name]
    ]


# Each area is its own test case with its own world; what an area needs from the areas before
# it (a locked-out member, keys, a rebound character) is done first, unchecked ("given").
AREAS: dict[str, tuple[list[Callable[[World], None]], list[Step]]] = {
    "accounts": ([], ACCOUNT_STEPS),
    "teams": ([sign_in_wrong, lock_out], TEAM_STEPS),
    "keys": ([], KEY_STEPS),
    "characters": ([add_editor_key, add_admin_key], CHARACTER_STEPS),
    "bundles": ([add_editor_key, add_admin_key, create_character, rebind], BUNDLE_STEPS),
    "jobs": ([add_editor_key, add_admin_key], JOB_STEPS),
    "builds": ([add_editor_key, add_admin_key], BUILD_STEPS),
    "audit": ([], AUDIT_STEPS),
    "backups": ([], BACKUP_STEPS),
}


def check_step(
    world: World, name: str, act: Callable[[World], None], expected: list[Expect]
) -> None:
    """Do one step and compare the events it added with the expected ones, all of them."""
    mark = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    act(world)
    events = list(AuditEvent.objects.filter(id__gt=mark).order_by("id"))
    problems: list[str] = []
    for index, expect in enumerate(expected):
        event = events[index] if index < len(events) else None
        problems.extend(_compare(world, expect, event))
    for extra in events[len(expected) :]:
        problems.append(
            f"unexpected {extra.action} ({extra.outcome}) on "
            f"{extra.target_type} {extra.target_id!r} {extra.target_label!r}"
        )
    assert not problems, f"{name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("area", AREAS)
def test_every_action_records_exactly_the_expected_event(
    area: str,
    client: Client,
    add_key: Callable[..., Key],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    subtests: pytest.Subtests,
) -> None:
    """One sub-test per step: a step that fails (its events, or its action raising) is
    reported, and the area's later steps still run and report their own."""
    settings.CONVAI_JOB_CONCURRENCY = 1
    team = Team.objects.create(name="Studio", slug="studio")
    roles = {r: MembershipFactory.create(team=team, role=r) for r in Role}
    world = World(
        client=client,
        add_key=add_key,
        team=team,
        owner=roles[Role.OWNER],
        admin=roles[Role.ADMIN],
        editor=roles[Role.EDITOR],
        viewer=roles[Role.VIEWER],
        stash={"monkeypatch": monkeypatch},
    )
    given, steps = AREAS[area]
    for act in given:
        act(world)
    for name, act, expected in steps:
        with subtests.test(msg=name):
            check_step(world, name, act, expected)


def test_every_step_is_in_one_area() -> None:
    names = [name for _given, steps in AREAS.values() for name, _act, _expected in steps]
    assert len(names) == len(set(names)) == 65


def test_no_event_carries_a_secret(client: Client, add_key: Callable[..., Key]) -> None:
    """Keys, a password and an invitation token go through the services; none reaches the log."""
    team = Team.objects.create(name="Studio", slug="studio")
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    key = add_key(admin, "Main key")
    keys.verify_api_key(actor=admin.user, api_key_id=key.pk)
    created = invitations.create_invitation(actor=admin, role=Role.VIEWER)
    from accounts import services as accounts

    accounts.change_password(actor=admin.user, new_password="Correct horse battery 99")
    client.post(reverse("accounts:login"), {"login": admin.user.username, "password": "bad"})
    everything = json.dumps(
        list(AuditEvent.objects.values()), default=str, ensure_ascii=False
    ).lower()
    for secret in (key.raw, created.token, "correct horse battery 99", TEST_PASSWORD):
        assert secret.lower() not in everything
    assert Invitation.objects.filter(pk=created.invitation.pk).exists()
    assert Job.objects.count() == 0
