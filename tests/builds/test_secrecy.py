"""Nothing secret reaches a page, a log or the audit log: not the build credential (old or
new), not the HS256 player secret, not a player's JWT, not a minted token, not the key."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import timedelta

import jwt
import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from builds import services
from builds.models import Build, MintedToken
from teams.models import Membership
from tests.builds.conftest import CREDENTIAL_HEADER, WEBGL_ORIGIN
from tests.support.characters import Key

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_secret_in_pages_logs_or_audit(
    client: Client, admin: Membership, admin_key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.force_login(admin.user)
    slug = admin.team.slug
    created = client.post(
        reverse("builds:build-create", args=[slug]),
        {
            "name": "Demo",
            "api_key": str(admin_key.pk),
            "allowed_origins": WEBGL_ORIGIN,
            "burst_per_minute": "5",
            "per_hour": "50",
            "player_auth": "HS256",
        },
    ).content.decode()
    values = re.findall(r'value="([^"]+)" readonly', created)
    credential = next(v for v in values if v.startswith("cvb_"))
    player_secret = next(v for v in values if not v.startswith(("cvb_", "http")))
    build = Build.objects.get()
    url = reverse("builds:token", args=[build.pk])
    now = int(time.time())
    player_jwt = jwt.encode(
        {"sub": "p1", "aud": str(build.pk), "iat": now, "exp": now + 60},
        player_secret,
        algorithm="HS256",
    )
    secrets = [credential, player_secret, player_jwt, admin_key.raw]
    answers = [
        client.post(
            url,
            headers={
                CREDENTIAL_HEADER: credential,
                "Authorization": f"Bearer {player_jwt}",
                "Origin": WEBGL_ORIGIN,
            },
        ),
        client.get(url, headers={CREDENTIAL_HEADER: credential}),  # no player token: 401
        client.get(url, headers={CREDENTIAL_HEADER: credential + "x"}),  # wrong: 401
    ]
    assert [a.status_code for a in answers] == [200, 401, 401]
    secrets.append(answers[0].json()["apiAuthToken"])
    rotated = services.rotate_credential(actor=admin, build_id=build.pk, overlap=timedelta(hours=1))
    secrets.append(rotated.credential)
    client.post(reverse("builds:build-revoke", args=[slug, build.pk]))
    services.revoke_minted_tokens(build.pk)

    pages = "".join(
        client.get(page).content.decode()
        for page in (
            reverse("builds:build-list", args=[slug]),
            reverse("builds:build-detail", args=[slug, build.pk]),
            reverse("audit:log", args=[slug]),
            reverse("keys:list"),
        )
    )
    audit = json.dumps(list(AuditEvent.objects.values()), default=str)
    stored = json.dumps(
        list(Build.objects.values()) + list(MintedToken.objects.values()), default=str
    )
    logs = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert secret not in pages
        assert secret not in audit
        assert secret not in logs
        assert secret not in stored
    assert "build.token_minted" in audit and "p1" in audit  # the player, by its subject
