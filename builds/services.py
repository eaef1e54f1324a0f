"""The operations on builds: register, rotate the credential, revoke (and revoke its tokens at
Convai), and the broker itself — one token per request from the build's endpoint.

Pages call the first three with the acting member (Admin+, asked of teams.policy again here);
the endpoint calls `mint` with what the game sent. Every mint, refusal and revoke is audited;
never a token or a credential (only the credential's public prefix)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.models import Outcome
from audit.services import record
from convai.client import ConvaiClient
from convai.errors import ConvaiError, ConvaiRateLimitError, ConvaiTimeoutError
from convai.types import AuthToken
from keys import crypto
from keys.models import ApiKey
from keys.services import ApiKeyUnusable, client_for
from teams.models import Membership
from teams.policy import authorize

from . import credentials, limits, players
from .errors import BuildError, BuildKeyUnusable, BuildNotFound, Refused
from .models import Build, MintedToken, PlayerAuth
from .selectors import is_expired, team_build, team_keys

logger = logging.getLogger("convai_admin.builds")

TARGET = "build"
# A token whose expiry Convai did not say is kept (for revocation) this long.
ASSUMED_TOKEN_LIFETIME = timedelta(hours=1)
# Rate-limit windows are kept two days: the build page charts the last one.
WINDOWS_KEPT = timedelta(hours=48)


@dataclass(frozen=True)
class BuildSettings:
    """What an Admin chooses for a build (the form's cleaned data)."""

    name: str
    api_key_id: UUID | str
    allowed_origins: list[str]
    burst_per_minute: int
    per_hour: int
    expires_at: datetime | None
    player_auth: str = PlayerAuth.NONE
    player_public_key: str = ""


@dataclass(frozen=True)
class Issued:
    """A build and the secrets it was just given, to be shown once and never again."""

    build: Build
    credential: str
    player_secret: str = ""


def _key_label(api_key: ApiKey | None) -> str:
    return str(api_key) if api_key is not None else ""


def _record_by_member(
    action: str, *, actor: Membership, build: Build, details: dict[str, object]
) -> None:
    """An audit event of a member's change to one build, in the caller's transaction."""
    record(
        action,
        actor=actor.user,
        team=actor.team,
        target_type=TARGET,
        target_id=build.pk,
        target_label=build.name,
        details=details,
    )


def _manage(actor: Membership, build: Build | None = None, label: str = "") -> None:
    authorize(
        actor,
        "build.manage",
        build,
        target_type=TARGET,
        target_id=build.pk if build is not None else "",
        target_label=build.name if build is not None else label,
    )


def _own_build(actor: Membership, build_id: UUID | str) -> Build:
    build = team_build(actor.team, build_id)
    if build is None:
        raise BuildNotFound()
    return build


@sensitive_variables()
def register_build(*, actor: Membership, settings_: BuildSettings) -> Issued:
    """A new build of the actor's team, minting with a member's usable key. Returns the build
    credential (and an HS256 player secret) to show once."""
    _manage(actor, label=settings_.name)
    api_key = team_keys(actor.team).filter(pk=settings_.api_key_id).first()
    if api_key is None:
        raise BuildKeyUnusable()
    credential = credentials.new_credential()
    player_secret = ""
    with transaction.atomic():
        build = Build.objects.create(
            team=actor.team,
            name=settings_.name,
            api_key=api_key,
            allowed_origins=settings_.allowed_origins,
            burst_per_minute=settings_.burst_per_minute,
            per_hour=settings_.per_hour,
            expires_at=settings_.expires_at,
            credential_prefix=credential.prefix,
            credential_hash=credential.digest,
            player_auth=settings_.player_auth,
            player_public_key=settings_.player_public_key.strip(),
            created_by=actor.user,
        )
        if build.player_auth == PlayerAuth.HS256:
            player_secret = credentials.new_player_secret()
            build.player_secret_ciphertext = crypto.encrypt(
                player_secret, associated_data=build.secret_context
            )
            build.save(update_fields=["player_secret_ciphertext"])
        _record_by_member(
            "build.registered",
            actor=actor,
            build=build,
            details={
                "key_used": _key_label(api_key),
                "allowed_origins": build.allowed_origins,
                "burst_per_minute": build.burst_per_minute,
                "per_hour": build.per_hour,
                "expires_at": build.expires_at.isoformat() if build.expires_at else None,
                "player_auth": build.player_auth or "none",
                "credential_prefix": credential.prefix,
            },
        )
    return Issued(build=build, credential=credential.value, player_secret=player_secret)


def update_build(*, actor: Membership, build_id: UUID | str, settings_: BuildSettings) -> Build:
    """Change a live build's name, key, origins, limits or expiry (its credential and player
    mode stay). Rebinding to another member's usable key is how a stopped build restarts."""
    build = _own_build(actor, build_id)
    _manage(actor, build)
    if build.revoked_at is not None:
        raise BuildError("This build was revoked: register a new one instead.")
    api_key = team_keys(actor.team).filter(pk=settings_.api_key_id).first()
    if api_key is None:
        raise BuildKeyUnusable()
    new = {
        "name": settings_.name,
        "api_key": api_key,
        "allowed_origins": settings_.allowed_origins,
        "burst_per_minute": settings_.burst_per_minute,
        "per_hour": settings_.per_hour,
        "expires_at": settings_.expires_at,
    }
    changes: dict[str, object] = {}
    for field, value in new.items():
        old = getattr(build, field)
        if old != value:
            shown: tuple[object, object] = (
                (_key_label(old), _key_label(api_key)) if field == "api_key" else (old, value)
            )
            changes[field] = {"old": shown[0], "new": shown[1]}
            setattr(build, field, value)
    if not changes:
        return build
    with transaction.atomic():
        build.save(update_fields=list(changes))
        _record_by_member(
            "build.updated",
            actor=actor,
            build=build,
            details={"changes": changes},
        )
    return build


@sensitive_variables()
def rotate_credential(*, actor: Membership, build_id: UUID | str, overlap: timedelta) -> Issued:
    """A new credential for the build; the current one keeps working for `overlap` (0: stops
    now), so a studio can ship the new one before the old stops. A credential from an earlier
    rotation stops at once."""
    build = _own_build(actor, build_id)
    _manage(actor, build)
    if build.revoked_at is not None:
        raise BuildError("This build was revoked: register a new one instead.")
    credential = credentials.new_credential()
    now = timezone.now()
    with transaction.atomic():
        old_prefix = build.credential_prefix
        build.previous_prefix = old_prefix if overlap > timedelta(0) else ""
        build.previous_hash = build.credential_hash if overlap > timedelta(0) else ""
        build.previous_valid_until = now + overlap if overlap > timedelta(0) else None
        build.credential_prefix = credential.prefix
        build.credential_hash = credential.digest
        build.rotated_at = now
        build.save(
            update_fields=[
                "previous_prefix",
                "previous_hash",
                "previous_valid_until",
                "credential_prefix",
                "credential_hash",
                "rotated_at",
            ]
        )
        _record_by_member(
            "build.credential_rotated",
            actor=actor,
            build=build,
            details={
                "old_prefix": old_prefix,
                "new_prefix": credential.prefix,
                "old_valid_until": (
                    build.previous_valid_until.isoformat() if build.previous_valid_until else None
                ),
            },
        )
    return Issued(build=build, credential=credential.value)


def revoke_build(*, actor: Membership, build_id: UUID | str) -> Build:
    """The build's credentials stop at once; the tokens it minted that have not expired are
    revoked at Convai by a background task (queued when this commits)."""
    build = _own_build(actor, build_id)
    _manage(actor, build)
    if build.revoked_at is not None:
        return build
    with transaction.atomic():
        build.revoked_at = timezone.now()
        build.save(update_fields=["revoked_at"])
        live = MintedToken.objects.filter(build=build, expires_at__gt=build.revoked_at).count()
        _record_by_member(
            "build.revoked",
            actor=actor,
            build=build,
            details={"live_tokens": live},
        )
        if live:
            from .tasks import revoke_build_tokens

            build_pk = str(build.pk)
            transaction.on_commit(lambda: revoke_build_tokens.enqueue(build_pk))
    return build


@dataclass
class _Revocation:
    """What one pass did: tokens revoked at Convai, tokens left for the next pass (Convai
    refused or could not take them, or the key could not be opened), and tokens no pass can
    revoke because the key that minted them is revoked or gone (forgotten: they expire within
    the hour by themselves)."""

    revoked: int = 0
    failed: int = 0
    unrevocable: int = 0

    def details(self, **extra: Any) -> dict[str, Any]:
        reason = (
            {"reason": "the key that minted them was revoked: they expire by themselves"}
            if self.unrevocable
            else {}
        )
        unrevocable = {"unrevocable": self.unrevocable} if self.unrevocable else {}
        return {"revoked": self.revoked, "failed": self.failed, **unrevocable, **extra, **reason}

    @property
    def outcome(self) -> str:
        return Outcome.SUCCESS if not (self.failed or self.unrevocable) else Outcome.FAILURE


@sensitive_variables()
def _revoke_at_convai(tokens: list[MintedToken]) -> _Revocation:
    """Revoke each token at Convai through the key that minted it; a revoked one is forgotten,
    as is one whose key is revoked or gone (nothing can revoke it: Convai refuses another
    account's token)."""
    done = _Revocation()
    clients: dict[UUID | None, ConvaiClient | None] = {}
    for minted in tokens:
        if minted.api_key is None or not minted.api_key.is_active:
            minted.delete()
            done.unrevocable += 1
            continue
        if minted.api_key_id not in clients:
            try:
                clients[minted.api_key_id] = client_for(minted.api_key)
            except ApiKeyUnusable:
                clients[minted.api_key_id] = None
        client = clients[minted.api_key_id]
        if client is None:
            done.failed += 1
            continue
        try:
            client.revoke_token(
                crypto.decrypt(minted.ciphertext, associated_data=minted.encryption_context)
            )
        except (ConvaiError, crypto.DecryptionError, crypto.KeyringError):
            done.failed += 1
            continue
        minted.delete()
        done.revoked += 1
    return done


def _live_tokens(**filters: Any) -> list[MintedToken]:
    """The kept tokens matching `filters`, the expired ones forgotten first."""
    MintedToken.objects.filter(expires_at__lte=timezone.now(), **filters).delete()
    return list(MintedToken.objects.filter(**filters).select_related("api_key"))


def revoke_minted_tokens(build_id: UUID | str) -> str:
    """Revoke at Convai every unexpired token a revoked build minted (the background task and
    the periodic tidy-up); one event records the pass."""
    build = Build.objects.select_related("team").filter(pk=build_id).first()
    if build is None or build.revoked_at is None:
        return "nothing to revoke"
    tokens = _live_tokens(build=build)
    if not tokens:
        return "no live tokens"
    done = _revoke_at_convai(tokens)
    record(
        "build.tokens_revoked",
        team=build.team,
        actor_label="Token broker",
        target_type=TARGET,
        target_id=build.pk,
        target_label=build.name,
        outcome=done.outcome,
        details=done.details(),
    )
    return f"{done.revoked} tokens revoked, {done.failed} left for the next pass"


def revoke_orphaned_tokens() -> str:
    """Revoke at Convai the unexpired tokens of builds whose team was deleted (the tokens
    outlive their build for this: MintedToken.build is SET_NULL), through the keys that
    minted them. The team's audit chain is sealed, so each build's pass is recorded in the
    global chain, under the build's ID (its mints are in the team's chain under that ID)."""
    tokens = _live_tokens(build__isnull=True)
    by_build: dict[UUID, list[MintedToken]] = {}
    for minted in tokens:
        by_build.setdefault(minted.build_ref, []).append(minted)
    revoked = failed = 0
    for build_ref, group in by_build.items():
        done = _revoke_at_convai(group)
        revoked, failed = revoked + done.revoked, failed + done.failed
        record(
            "build.tokens_revoked",
            actor_label="Token broker",
            target_type=TARGET,
            target_id=build_ref,
            target_label="a build of a deleted team",
            outcome=done.outcome,
            details=done.details(team_deleted=True),
        )
    return f"{revoked} tokens of deleted teams' builds revoked, {failed} left"


def tidy_minted_tokens() -> str:
    """Periodic: forget expired tokens and old rate-limit windows, and retry revoking the live
    tokens of revoked builds and of deleted teams' builds."""
    now = timezone.now()
    expired, _ = MintedToken.objects.filter(expires_at__lte=now).delete()
    windows = limits.prune(older_than=WINDOWS_KEPT, now=now)
    pending = (
        MintedToken.objects.filter(build__revoked_at__isnull=False)
        .values_list("build_id", flat=True)
        .distinct()
    )
    summaries = [revoke_minted_tokens(build_id) for build_id in pending]
    orphaned = (
        revoke_orphaned_tokens() if MintedToken.objects.filter(build__isnull=True).exists() else ""
    )
    return (
        f"{expired} expired tokens and {windows} old windows forgotten; "
        f"{len(summaries)} revoked builds retried" + (f"; {orphaned}" if orphaned else "")
    )


# --- the broker -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """What a game's request to the token endpoint carried (the IP and user agent reach the
    audit event through the audit context)."""

    credential: str
    origin: str
    player_token: str
    secure: bool


def _refusal_event(build: Build | None, error: Refused, caller: Caller, subject: str) -> None:
    record(
        "build.token_refused",
        team=build.team if build is not None else None,
        actor_label=f"Build {build.name}" if build is not None else "Unknown build",
        target_type=TARGET,
        target_id=build.pk if build is not None else "",
        target_label=build.name if build is not None else "",
        outcome=Outcome.DENIED if error.status < 500 else Outcome.FAILURE,
        details={
            "reason": error.code,
            "origin": caller.origin[:200],
            **({"player": subject} if subject else {}),
        },
    )


def _quiet_refusal(scope: str) -> bool:
    """Whether a stream of the same refusal (rate limits, unknown credentials) should be
    audited now: once per scope and minute; the others are only answered."""
    return limits.first_in_window(limits.Window(scope, limits.MINUTE, None))


def _check_credential(build: Build, presented: str, now: datetime) -> str:
    """The prefix of the credential that matched (current, or the previous one during its
    overlap), else Refused."""
    prefix = credentials.prefix_of(presented)
    if prefix is not None:
        if prefix == build.credential_prefix and credentials.matches(
            presented, build.credential_hash
        ):
            return prefix
        if (
            prefix == build.previous_prefix
            and build.previous_valid_until is not None
            and build.previous_valid_until > now
            and credentials.matches(presented, build.previous_hash)
        ):
            return prefix
    raise Refused(
        401,
        "credential_invalid",
        "The build credential is missing or wrong (header X-Convai-Admin-Build).",
    )


@sensitive_variables()
def _player_subject(build: Build, token: str) -> str:
    if not build.player_auth:
        return ""
    if build.player_auth == PlayerAuth.HS256:
        key: object = crypto.decrypt(
            build.player_secret_ciphertext, associated_data=build.secret_context
        )
    else:
        key = build.player_public_key
    return players.subject_of(token, algorithm=build.player_auth, key=key, audience=str(build.pk))


def windows_for(build: Build) -> list[limits.Window]:
    """The build's burst and hourly limits, then the team's hourly cap."""
    return [
        limits.Window(f"build:{build.pk}:minute", limits.MINUTE, build.burst_per_minute, "burst"),
        limits.Window(f"build:{build.pk}:hour", limits.HOUR, build.per_hour, "hourly"),
        limits.Window(
            f"team:{build.team_id}:hour",
            limits.HOUR,
            settings.CONVAI_BUILD_TEAM_PER_HOUR,
            "team_hourly",
        ),
    ]


_LIMIT_MESSAGES = {
    "burst": "This build asked for too many tokens in the last minute.",
    "hourly": "This build reached its tokens-per-hour limit.",
    "team_hourly": "The team's builds reached their tokens-per-hour cap.",
}


@sensitive_variables()
def mint(*, build: Build | None, caller: Caller) -> AuthToken:
    """One Convai token for a game, through the build's key; Refused (audited) otherwise.

    The order of the checks: transport, credential (so nobody without it learns anything about
    the build), the build's state, the browser origin, the player, the key, the limits. A
    limit is counted only for a token actually handed out."""
    subject = ""
    try:
        if build is None:
            raise Refused(
                401,
                "credential_invalid",
                "The build credential is missing or wrong (header X-Convai-Admin-Build).",
            )
        if not caller.secure:
            raise Refused(403, "https_required", "Call the token endpoint over HTTPS.")
        now = timezone.now()
        _check_credential(build, caller.credential, now)
        if build.revoked_at is not None:
            raise Refused(403, "build_revoked", "This build was revoked by its team.")
        if build.team.archived_at is not None:
            raise Refused(
                403,
                "team_archived",
                "This build's team is archived: an Owner must unarchive it first.",
            )
        if is_expired(build, now=now):
            raise Refused(403, "build_expired", "This build has expired.")
        if caller.origin and caller.origin not in build.allowed_origins:
            raise Refused(403, "origin_not_allowed", "This origin may not call this build.")
        subject = _player_subject(build, caller.player_token)
        if not getattr(build, "key_usable", False) or build.api_key is None:
            raise Refused(
                503,
                "key_unusable",
                "This build's key can no longer mint tokens. The team's admins must bind it to "
                "another key.",
            )
        windows = windows_for(build)
        try:
            limits.take(windows, now=now)
        except limits.Full as full:
            raise Refused(
                429,
                full.window.reason,
                _LIMIT_MESSAGES[full.window.reason],
                retry_after=full.retry_after,
            ) from None
        try:
            token = _from_convai(build)
        except Refused:
            limits.give_back(windows, now=now)
            raise
    except Refused as error:
        quiet = error.status == 429 or build is None or error.code == "credential_invalid"
        scope = (
            f"refused:{build.pk if build is not None else 'unknown'}:{error.code}" if quiet else ""
        )
        if not quiet or _quiet_refusal(scope):
            _refusal_event(build, error, caller, subject)
        raise
    _minted(build, token, caller, subject)
    return token


@sensitive_variables()
def _from_convai(build: Build) -> AuthToken:
    assert build.api_key is not None
    try:
        return client_for(build.api_key).connect()
    except ApiKeyUnusable:
        raise Refused(
            503, "key_unusable", "This build's key cannot be read on the server."
        ) from None
    except ConvaiRateLimitError as error:
        raise Refused(
            429,
            "convai_rate_limited",
            "Convai is rate limiting this key; try again later.",
            retry_after=max(1, round(error.retry_after or 30)),
        ) from None
    except ConvaiTimeoutError:
        raise Refused(504, "convai_timeout", "Convai did not answer in time.") from None
    except ConvaiError as error:
        status = 502 if error.status is not None and error.status < 500 else 503
        raise Refused(status, "convai_failed", "Convai could not mint a token.") from None


@sensitive_variables()
def _minted(build: Build, token: AuthToken, caller: Caller, subject: str) -> None:
    """Keep the token (encrypted, for a later revocation) and audit the mint, together."""
    expires_at = token.expires_at or timezone.now() + ASSUMED_TOKEN_LIFETIME
    minted = MintedToken(
        build=build, build_ref=build.pk, api_key_id=build.api_key_id, expires_at=expires_at
    )
    with transaction.atomic():
        minted.ciphertext = crypto.encrypt(token.token, associated_data=minted.encryption_context)
        minted.save()
        record(
            "build.token_minted",
            team=build.team,
            actor_label=f"Build {build.name}",
            target_type=TARGET,
            target_id=build.pk,
            target_label=build.name,
            details={
                "origin": caller.origin[:200],
                "expires_at": expires_at.isoformat(),
                "key_used": _key_label(build.api_key),
                **({"player": subject} if subject else {}),
            },
        )
