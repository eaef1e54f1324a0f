"""The benchmark's no-op token proxy: the URLconf of a third server (`python -m
tests.bench.server PORT tests.bench.floor`) that runs the product's settings and middleware and
answers `/floor/token` with one Convai `connect` through the product's client, with the key the
request carries (loopback only, a benchmark's throwaway sandbox key). No credential check, no
limits, nothing written: what any token backend written in this stack costs over a bare
`/user/connect` before it does any work of its own."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path

from convai.client import API_KEY_HEADER, ConvaiClient


def token(request: HttpRequest) -> JsonResponse:
    minted = ConvaiClient(request.headers[API_KEY_HEADER]).connect()
    body = {"apiAuthToken": minted.token}
    if minted.expires_at is not None:
        body["expirationTime"] = minted.expires_at.isoformat()
    return JsonResponse(body)


urlpatterns = [path("floor/token", token)]
