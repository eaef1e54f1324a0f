"""The build forms: register / change a build, rotate its credential."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.utils import timezone

from keys.models import ApiKey
from teams.models import Team

from .models import Build, PlayerAuth
from .players import check_public_key
from .selectors import team_keys

MAX_ORIGINS = 20
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


def normalise_origin(value: str) -> str:
    """An exact browser origin (`https://game.example.com[:port]`), lower-cased, or
    ValidationError. Plain http only for loopback (a local WebGL test)."""
    text = value.strip().rstrip("/")
    parts = urlsplit(text)
    if (
        parts.scheme not in {"https", "http"}
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
        or "*" in text
    ):
        raise forms.ValidationError(
            f"“{value.strip()[:100]}” is not an origin: write the scheme and host only, e.g. "
            "https://play.example.com (a port is allowed, a path or wildcard is not)."
        )
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise forms.ValidationError(
            f"“{text[:100]}” uses plain http: only https origins may call a build "
            "(http is allowed for localhost while testing)."
        )
    try:
        port = parts.port
    except ValueError:
        raise forms.ValidationError(f"“{text[:100]}” has an invalid port.") from None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}"


class KeyChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        api_key: ApiKey = obj
        return f"{api_key.label} (…{api_key.last_four}) · {api_key.owner.display_name}"


class BuildForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        help_text="What your studio calls it, e.g. “Demo — Windows” or “WebGL beta”.",
    )
    api_key = KeyChoice(
        queryset=ApiKey.objects.none(),
        label="Mint tokens with",
        empty_label="Choose a member's key…",
        help_text="Tokens are minted with this key and spend its Convai account's quota. Only "
        "verified keys of this team's members are offered.",
    )
    allowed_origins = forms.CharField(
        required=False,
        label="Allowed web origins",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"}),
        help_text="For WebGL and web builds: one exact origin per line, e.g. "
        "https://play.example.com. Browsers on any other origin are refused. Leave empty for "
        "desktop, mobile and console builds.",
    )
    burst_per_minute = forms.IntegerField(
        min_value=1, max_value=10_000, initial=30, label="Tokens per minute (burst)"
    )
    per_hour = forms.IntegerField(
        min_value=1, max_value=1_000_000, initial=600, label="Tokens per hour"
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Stops working on (optional)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["api_key"].queryset = team_keys(team)  # type: ignore[attr-defined]
        self.fields["expires_at"].help_text = (
            "For a time-limited demo or playtest. The time is in "
            f"{timezone.get_current_timezone_name()}."
        )

    def clean_allowed_origins(self) -> list[str]:
        lines = [line for line in self.cleaned_data["allowed_origins"].splitlines() if line.strip()]
        if len(lines) > MAX_ORIGINS:
            raise forms.ValidationError(f"At most {MAX_ORIGINS} origins.")
        origins: list[str] = []
        errors: list[forms.ValidationError] = []
        for line in lines:
            try:
                origin = normalise_origin(line)
            except forms.ValidationError as error:
                errors.append(error)
                continue
            if origin not in origins:
                origins.append(origin)
        if errors:
            raise forms.ValidationError(errors)
        return origins

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("Choose a time in the future, or leave it empty.")
        return expires_at

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        burst, hourly = data.get("burst_per_minute"), data.get("per_hour")
        if burst is not None and hourly is not None and burst > hourly:
            self.add_error("burst_per_minute", "The burst cannot be more than the hourly limit.")
        return data

    @classmethod
    def initial_for(cls, build: Build) -> dict[str, Any]:
        return {
            "name": build.name,
            "api_key": build.api_key_id,
            "allowed_origins": "\n".join(build.allowed_origins),
            "burst_per_minute": build.burst_per_minute,
            "per_hour": build.per_hour,
            "expires_at": build.expires_at,
        }


class RegisterBuildForm(BuildForm):
    player_auth = forms.ChoiceField(
        choices=PlayerAuth.choices,
        required=False,
        label="Per-player tokens",
        help_text="Optional: your game's backend signs a short JWT per player, and the broker "
        "checks it before minting. Chosen once, when the build is registered.",
    )
    player_public_key = forms.CharField(
        required=False,
        label="Your public key (RS256 / ES256)",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "mono"}),
        help_text="PEM, “-----BEGIN PUBLIC KEY-----”. Not needed for HS256, whose secret we "
        "generate and show once.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        algorithm = data.get("player_auth") or ""
        pem = (data.get("player_public_key") or "").strip()
        if algorithm in {PlayerAuth.RS256, PlayerAuth.ES256}:
            problem = (
                check_public_key(pem, algorithm)
                if pem
                else f"Paste the public key your backend's {algorithm} signing key pairs with."
            )
            if problem:
                self.add_error("player_public_key", problem)
        elif pem:
            self.add_error(
                "player_public_key", "A public key is only used with RS256 or ES256: choose one."
            )
        return data


OVERLAPS = {
    "0": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


class RotateForm(forms.Form):
    overlap = forms.ChoiceField(
        choices=[
            ("0", "Stops now (the credential leaked)"),
            ("1h", "Keeps working for 1 hour"),
            ("24h", "Keeps working for 24 hours"),
            ("7d", "Keeps working for 7 days (time to ship an update)"),
        ],
        initial="24h",
        label="The current credential",
        widget=forms.RadioSelect,
    )

    @property
    def overlap_delta(self) -> timedelta:
        return OVERLAPS[self.cleaned_data["overlap"]]
