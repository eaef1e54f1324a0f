"""HTTP face of the sandbox: the same paths, methods, headers and bodies as Convai.

Every endpoint goes through `endpoint`, which answers 404 unless CONVAI_SANDBOX is on (checked
per request, so it can never leak into a production deployment that leaves it off), then
applies injected faults, authenticates the `CONVAI-API-KEY` header and encodes the result.
A successful character call is counted against the account's core-API quota, which the
usage endpoint reports.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import emulator, services
from .models import SandboxKey

Operation = Callable[[SandboxKey, Mapping[str, Any]], Any]

UNAVAILABLE_HTML = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)
MALFORMED_BODY = '{"STATUS": "SUCC'
RATE_LIMITED = "Too many requests. Please slow down and try again later."


def _json_body(request: HttpRequest) -> Mapping[str, Any]:
    """The decoded JSON object, or {} for anything else (then the documented errors for
    missing fields apply)."""
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[…" bodies
        return {}
    return body if isinstance(body, dict) else {}


def _answer(
    request: HttpRequest,
    operation: Operation,
    success_status: int,
    missing_key_status: int,
    faults: services.ActiveFaults,
    key: SandboxKey | None,
    raw_key: str,
    core_api: bool,
    invalid: str = emulator.INVALID_KEY,
) -> HttpResponse:
    """Faults first (they stand for the gateway in front of the API), then the key, then the
    operation itself."""
    if faults.outage or (faults.failure_rate and random.random() < faults.failure_rate):  # noqa: S311
        return HttpResponse(UNAVAILABLE_HTML, status=503, content_type="text/html")
    if faults.rate_limit:
        response = JsonResponse({"ERROR": RATE_LIMITED}, status=429)
        response["Retry-After"] = str(faults.retry_after)
        return response
    if not raw_key:
        return JsonResponse({"API_ERROR": emulator.MISSING_KEY}, status=missing_key_status)
    if key is None:
        return JsonResponse({"API_ERROR": invalid}, status=401)
    if faults.malformed:
        return HttpResponse(MALFORMED_BODY, status=200, content_type="application/json")
    try:
        result = operation(key, _json_body(request))
    except emulator.RemoteError as error:
        return JsonResponse(error.body, status=error.status)
    if core_api:
        services.count_core_api_call(key)
    return JsonResponse(result, status=success_status, safe=False)


def endpoint(
    method: str,
    *,
    success_status: int = 200,
    missing_key_status: int = 401,
    core_api: bool = True,
    key_only: bool = False,
) -> Callable[[Operation], Callable[[HttpRequest], HttpResponse]]:
    """Wrap an emulator operation as a view. Missing-key status: 401 on the base page's
    endpoints, 400 on list, the catalogues and usage (api-notes.md). `core_api`: a success
    spends one unit of the account's core-API quota (the character endpoints do).

    A request authenticates with `CONVAI-API-KEY`, or with a live auth token in
    `API-AUTH-TOKEN` (the key header wins when both are sent); `key_only` endpoints (the token
    endpoints themselves) refuse a token: a token cannot mint, extend or revoke tokens."""

    def decorate(operation: Operation) -> Callable[[HttpRequest], HttpResponse]:
        @csrf_exempt
        @wraps(operation)
        def view(request: HttpRequest) -> HttpResponse:
            if not settings.CONVAI_SANDBOX:
                raise Http404("The Convai sandbox is off.")
            if request.method != method:
                refusal = JsonResponse({"ERROR": "Method Not Allowed"}, status=405)
                refusal["Allow"] = method
                return refusal
            raw_key = request.headers.get("CONVAI-API-KEY", "").strip()
            raw_token = request.headers.get("API-AUTH-TOKEN", "").strip()
            invalid = emulator.INVALID_KEY
            if raw_key or key_only:
                key = services.authenticate(raw_key)
                if not raw_key and raw_token:
                    raw_key, invalid = raw_token, emulator.TOKEN_NEEDS_KEY
            else:
                key = services.authenticate_token(raw_token)
                raw_key, invalid = raw_token, emulator.INVALID_TOKEN
            faults = services.active_faults(key)
            response = _answer(
                request,
                operation,
                success_status,
                missing_key_status,
                faults,
                key,
                raw_key,
                core_api,
                invalid,
            )
            # Latency is added to the answer, after the work: a slow write still happens.
            if faults.latency_ms:
                time.sleep(faults.latency_ms / 1000)
            return response

        return view

    return decorate


create_character = endpoint("POST", success_status=201)(emulator.create)
update_character = endpoint("POST")(emulator.update)
get_character = endpoint("POST")(emulator.get)
clone_character = endpoint("POST")(emulator.clone)
delete_character = endpoint("POST")(emulator.delete)
list_characters = endpoint("POST", missing_key_status=400)(emulator.list_characters)
list_voices = endpoint("GET", missing_key_status=400, core_api=False)(emulator.voices)
list_languages = endpoint("GET", missing_key_status=400, core_api=False)(emulator.languages)
account_usage = endpoint("POST", missing_key_status=400, core_api=False)(emulator.account_usage)
connect = endpoint("POST", core_api=False, key_only=True)(emulator.connect)
extend_token = endpoint("POST", core_api=False, key_only=True)(emulator.extend_token)
revoke_token = endpoint("POST", core_api=False, key_only=True)(emulator.revoke_token)
