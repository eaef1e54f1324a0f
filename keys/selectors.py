"""Read queries for personal API keys, always scoped to their owner."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User

from .models import ApiKey


def api_keys_for(user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(owner=user, revoked_at__isnull=True).order_by("-created_at")


def has_api_key(user: User) -> bool:
    return api_keys_for(user).exists()
