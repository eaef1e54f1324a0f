"""The background half of revoking a build, or of deleting its team: its live tokens revoked
at Convai."""

from __future__ import annotations

from django_tasks import task

from audit.context import audit_context

from . import services


@task()
def revoke_build_tokens(build_id: str) -> str:
    with audit_context(origin=f"task revoke_build_tokens {build_id}"):
        return services.revoke_minted_tokens(build_id)


@task()
def revoke_orphaned_tokens() -> str:
    with audit_context(origin="task revoke_orphaned_tokens"):
        return services.revoke_orphaned_tokens()
