"""The token endpoint a game build calls: `/api/builds/<build id>/token`, GET or POST, with the
build credential in the static header `X-Convai-Admin-Build` (and, in per-player mode, the
player's JWT as `Authorization: Bearer`). It answers exactly what Convai's SDKs read:
`{"apiAuthToken": ..., "expirationTime": ISO-8601}`; refusals are JSON too
(`{"error": code, "message": ...}`), never a page or a sign-in redirect.

Browsers (WebGL) get exact-origin CORS: the preflight and the answers carry
`Access-Control-Allow-Origin` only for an origin the build allows; any other origin gets no
CORS headers (and the request itself is refused). No session, no CSRF (a header credential
cannot be sent cross-site without CORS allowing it)."""

from __future__ import annotations

import ipaddress
from datetime import UTC
from uuid import UUID

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from convai_admin.net import client_ip

from . import services
from .errors import Refused
from .models import Build
from .selectors import build_for_endpoint

CREDENTIAL_HEADER = "X-Convai-Admin-Build"
ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = f"Authorization, Content-Type, {CREDENTIAL_HEADER}"
PREFLIGHT_MAX_AGE = "600"


def _secure(request: HttpRequest) -> bool:
    """HTTPS (as the trusted proxy says, through request.is_secure), or a loopback client:
    the SDKs allow plain http only on loopback, and so do we."""
    if request.is_secure():
        return True
    ip = client_ip(request)
    return ip is not None and ipaddress.ip_address(ip).is_loopback


def _allowed_origin(build: Build | None, origin: str) -> bool:
    return (
        build is not None
        and build.revoked_at is None
        and bool(origin)
        and origin in build.allowed_origins
    )


def _cors(response: HttpResponse, build: Build | None, origin: str) -> HttpResponse:
    response["Vary"] = "Origin"
    response["Cache-Control"] = "no-store"
    if _allowed_origin(build, origin):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = "Retry-After"
    return response


def _preflight(build: Build | None, origin: str) -> HttpResponse:
    if not _allowed_origin(build, origin):
        return _cors(HttpResponse(status=403), None, "")
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    response["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return _cors(response, build, origin)


def _bearer(request: HttpRequest) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@csrf_exempt
@sensitive_variables()
def token(request: HttpRequest, build_id: UUID) -> HttpResponse:
    origin = request.headers.get("Origin", "").strip()
    build = build_for_endpoint(build_id)
    if request.method == "OPTIONS":
        return _preflight(build, origin)
    if request.method not in {"GET", "POST"}:
        refusal = JsonResponse(
            {"error": "method_not_allowed", "message": "Use GET or POST."}, status=405
        )
        refusal["Allow"] = ALLOWED_METHODS
        return _cors(refusal, build, origin)
    caller = services.Caller(
        credential=request.headers.get(CREDENTIAL_HEADER, "").strip(),
        origin=origin,
        player_token=_bearer(request),
        secure=_secure(request),
    )
    try:
        minted = services.mint(build=build, caller=caller)
    except Refused as refusal:
        response = JsonResponse(
            {"error": refusal.code, "message": refusal.message}, status=refusal.status
        )
        if refusal.retry_after is not None:
            response["Retry-After"] = str(refusal.retry_after)
        return _cors(response, build, origin)
    body: dict[str, str] = {"apiAuthToken": minted.token}
    if minted.expires_at is not None:
        body["expirationTime"] = (
            minted.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        )
    return _cors(JsonResponse(body), build, origin)
