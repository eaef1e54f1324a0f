"""Helpers shared by the bundle tests: a bundle document, a character entry, a page upload."""

from __future__ import annotations

import json
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from characters.bundles.schema import SCHEMA


def document(characters: list[dict[str, Any]], **top: Any) -> bytes:
    return json.dumps({"schema": SCHEMA, "characters": characters, **top}).encode()


def entry(convai_id: str = "abc-123", **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "convai_id": convai_id,
        "name": "Ada",
        "voice_type": "FEMALE",
        "backstory": "An engineer.",
        "actions": ["Wave"],
        "language_codes": ["en-US"],
    }
    values.update(fields)
    return values


def upload(client: Client, team_slug: str, data: bytes, key: Any, name: str = "b.json") -> Any:
    """POST a file to the bundle import page, as the browser's form does."""
    return client.post(
        reverse("bundles:import", args=[team_slug]),
        {"bundle": SimpleUploadedFile(name, data, "application/json"), "key": str(key.pk)},
    )
