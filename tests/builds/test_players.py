"""Per-player mode: the game's backend signs a short JWT for a player; the broker checks the
algorithm the build names, the signature, aud = the build, exp, iat (30 s of skew) and the
lifetime, and records the player in the audit event."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from builds.models import PlayerAuth
from builds.services import Issued
from tests.builds.conftest import CREDENTIAL_HEADER

pytestmark = pytest.mark.django_db(transaction=True)


def claims(issued: Issued, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": "player-42",
        "aud": str(issued.build.pk),
        "iat": now,
        "exp": now + 300,
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def ask(client: Client, issued: Issued, player_jwt: str | None) -> Any:
    headers = {CREDENTIAL_HEADER: issued.credential}
    if player_jwt is not None:
        headers["Authorization"] = f"Bearer {player_jwt}"
    return client.post(reverse("builds:token", args=[issued.build.pk]), headers=headers)


@pytest.fixture
def hs256(register: Callable[..., Issued]) -> Issued:
    issued = register(player_auth=PlayerAuth.HS256)
    assert issued.player_secret
    return issued


def test_a_valid_player_token_mints_and_names_the_player(client: Client, hs256: Issued) -> None:
    token = jwt.encode(claims(hs256), hs256.player_secret, algorithm="HS256")
    response = ask(client, hs256, token)
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="build.token_minted")
    assert event.details["player"] == "player-42"
    assert token not in str(event.details)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 case
@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("missing", lambda i: None),
        ("garbage", lambda i: "not.a.jwt"),
        ("wrong secret", lambda i: jwt.encode(claims(i), "x" * 40, algorithm="HS256")),
        (
            "expired",
            lambda i: jwt.encode(
                claims(i, exp=int(time.time()) - 60), i.player_secret, algorithm="HS256"
            ),
        ),
        (
            "another build",
            lambda i: jwt.encode(claims(i, aud="another"), i.player_secret, algorithm="HS256"),
        ),
        (
            "no subject",
            lambda i: jwt.encode(claims(i, sub=None), i.player_secret, algorithm="HS256"),
        ),
        ("no iat", lambda i: jwt.encode(claims(i, iat=None), i.player_secret, algorithm="HS256")),
        (
            "from the future",
            lambda i: jwt.encode(
                claims(i, iat=int(time.time()) + 600, exp=int(time.time()) + 700),
                i.player_secret,
                algorithm="HS256",
            ),
        ),
        (
            "lives too long",
            lambda i: jwt.encode(
                claims(i, exp=int(time.time()) + 3600), i.player_secret, algorithm="HS256"
            ),
        ),
        ("alg none", lambda i: jwt.encode(claims(i), None, algorithm="none")),
        ("HS512", lambda i: jwt.encode(claims(i), i.player_secret, algorithm="HS512")),
    ],
)
def test_bad_player_tokens_are_401_and_mint_nothing(
    client: Client, hs256: Issued, case: str, make: Callable[[Issued], str | None]
) -> None:
    response = ask(client, hs256, make(hs256))
    assert response.status_code == 401, case
    assert response.json()["error"] in {"player_token_missing", "player_token_invalid"}
    assert not AuditEvent.objects.filter(action="build.token_minted").exists()
    assert AuditEvent.objects.filter(action="build.token_refused").count() == 1


def test_es256_with_the_studios_public_key(client: Client, register: Callable[..., Issued]) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issued = register(player_auth=PlayerAuth.ES256, player_public_key=public.decode())
    assert issued.player_secret == ""
    assert (
        ask(client, issued, jwt.encode(claims(issued), private, algorithm="ES256")).status_code
        == 200
    )
    other = ec.generate_private_key(ec.SECP256R1())
    assert (
        ask(client, issued, jwt.encode(claims(issued), other, algorithm="ES256")).status_code == 401
    )
    # An HS256 token "signed" with the public key text must not pass (algorithm confusion).
    confused = jwt.encode(claims(issued), "a" * 32, algorithm="HS256")
    assert ask(client, issued, confused).status_code == 401
