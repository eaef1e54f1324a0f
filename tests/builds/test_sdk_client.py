"""Done means (issue 16): a client that behaves exactly like Convai's SDKs gets working tokens
from the build's endpoint — GET and POST, the default field path, the static header, a WebGL
page's CORS preflight — and the token works on the sandbox's other endpoints through
`API-AUTH-TOKEN`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from builds.services import Issued
from tests.builds.conftest import WEBGL_ORIGIN
from tests.builds.support import CREDENTIAL_HEADER, CorsBlocked, SdkClient

pytestmark = pytest.mark.django_db(transaction=True)


def _url(live_server: Any, issued: Issued) -> str:
    return live_server.url + reverse("builds:token", args=[issued.build.pk])


def _works_at_convai(sandbox_url: str, token: str) -> bool:
    answer = requests.post(
        f"{sandbox_url}/character/list", headers={"API-AUTH-TOKEN": token}, timeout=10
    )
    return answer.status_code == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_sdk_gets_a_token_that_works_at_convai(
    live_server: Any, sandbox_url: str, issued: Issued, method: str
) -> None:
    sdk = SdkClient(
        _url(live_server, issued), method=method, headers={CREDENTIAL_HEADER: issued.credential}
    )
    response = sdk.request()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert set(response.json()) == {"apiAuthToken", "expirationTime"}  # exactly the SDK's shape
    token, expires = sdk.fetch_token()
    assert expires is not None
    assert timedelta(minutes=59) < expires - timezone.now() <= timedelta(hours=1)
    assert _works_at_convai(sandbox_url, token)
    minted = AuditEvent.objects.filter(action="build.token_minted").order_by("-id").first()
    assert minted is not None
    assert minted.target_id == str(issued.build.pk)
    assert minted.ip_address == "127.0.0.1"
    assert token not in str(minted.details)


def test_every_request_mints_a_new_token(live_server: Any, issued: Issued) -> None:
    sdk = SdkClient(_url(live_server, issued), headers={CREDENTIAL_HEADER: issued.credential})
    assert sdk.fetch_token()[0] != sdk.fetch_token()[0]


def test_a_webgl_page_on_an_allowed_origin_passes_the_preflight(
    live_server: Any, sandbox_url: str, issued: Issued
) -> None:
    sdk = SdkClient(
        _url(live_server, issued),
        method="POST",
        headers={CREDENTIAL_HEADER: issued.credential, "Content-Type": "application/json"},
        origin=WEBGL_ORIGIN,
    )
    token, _ = sdk.fetch_token()
    assert _works_at_convai(sandbox_url, token)
    minted = AuditEvent.objects.get(action="build.token_minted")
    assert minted.details["origin"] == WEBGL_ORIGIN


def test_the_preflight_answers_exactly(live_server: Any, issued: Issued) -> None:
    answer = requests.options(
        _url(live_server, issued),
        headers={
            "Origin": WEBGL_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-convai-admin-build",
        },
        timeout=10,
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == WEBGL_ORIGIN
    assert answer.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    allowed = {h.strip() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"Authorization", "Content-Type", CREDENTIAL_HEADER} <= allowed
    assert "Origin" in answer.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in answer.headers  # no cookies, ever


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example.com", "http://play.example.com", "https://play.example.com:8443"],
)
def test_another_origin_gets_no_cors_and_no_token(
    live_server: Any, issued: Issued, origin: str
) -> None:
    url = _url(live_server, issued)
    sdk = SdkClient(url, headers={CREDENTIAL_HEADER: issued.credential}, origin=origin)
    with pytest.raises(CorsBlocked):
        sdk.request()
    # A page that skips the preflight (a simple GET) is refused too, without CORS headers.
    direct = requests.get(
        url, headers={CREDENTIAL_HEADER: issued.credential, "Origin": origin}, timeout=10
    )
    assert direct.status_code == 403
    assert direct.json()["error"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in direct.headers
    assert not AuditEvent.objects.filter(action="build.token_minted").exists()
