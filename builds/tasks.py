"""The background half of revoking a build: its live tokens revoked at Convai."""

from __future__ import annotations

from django_tasks import task

from audit.context import audit_context

from . import services


@task()
def revoke_build_tokens(build_id: str) -> str:
    with audit_context(origin=f"task revoke_build_tokens {build_id}"):
        return services.revoke_minted_tokens(build_id)
