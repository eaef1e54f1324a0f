"""A client of the token endpoint that behaves like Convai's SDKs (Unity 4.5 "Auth Token
mode", the web SDK): GET or POST to the configured URL with the static headers of the project
settings, read the token at a dotted field path (default `apiAuthToken`) and the optional
`expirationTime`; a WebGL build's browser sends its Origin and, for a request with custom
headers, an OPTIONS preflight first and reads the answer only if CORS allows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

CREDENTIAL_HEADER = "X-Convai-Admin-Build"


class CorsBlocked(Exception):
    """What a browser does when the preflight or the answer lacks the CORS permission."""


@dataclass
class SdkClient:
    url: str
    method: str = "GET"
    field_path: str = "apiAuthToken"
    headers: dict[str, str] = field(default_factory=dict)
    origin: str = ""  # a WebGL build's page origin ("" for desktop builds: no Origin header)

    def request(self, *, extra: dict[str, str] | None = None) -> requests.Response:
        headers = {**self.headers, **(extra or {})}
        if self.origin:
            preflight = requests.options(
                self.url,
                headers={
                    "Origin": self.origin,
                    "Access-Control-Request-Method": self.method,
                    "Access-Control-Request-Headers": ", ".join(sorted(h.lower() for h in headers)),
                },
                timeout=10,
            )
            if preflight.headers.get("Access-Control-Allow-Origin") != self.origin:
                raise CorsBlocked("preflight refused")
            allowed = {
                h.strip().lower()
                for h in preflight.headers.get("Access-Control-Allow-Headers", "").split(",")
            }
            if not {h.lower() for h in headers} <= allowed:
                raise CorsBlocked("a header is not allowed")
            headers["Origin"] = self.origin
        if self.method == "POST":
            response = requests.post(self.url, headers=headers, json={}, timeout=10)
        else:
            response = requests.get(self.url, headers=headers, timeout=10)
        if self.origin and response.headers.get("Access-Control-Allow-Origin") != self.origin:
            raise CorsBlocked("answer not readable")
        return response

    def fetch_token(self) -> tuple[str, datetime | None]:
        """What the SDK keeps: the token at the field path, and the expiry if given."""
        response = self.request()
        response.raise_for_status()
        value: Any = response.json()
        for part in self.field_path.split("."):
            value = value[part]
        expires = response.json().get("expirationTime")
        return str(value), datetime.fromisoformat(expires) if expires else None
