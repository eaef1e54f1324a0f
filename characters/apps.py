from django.apps import AppConfig


class CharactersConfig(AppConfig):
    name = "characters"

    def ready(self) -> None:
        from datetime import timedelta

        from django.conf import settings

        from jobs import periodic

        from . import (
            drift,
            job_kinds,
            reconciliation,
        )
        from .bundles import uploads

        # Import all, sync all, bundle import: their tasks, start pages and rules (jobs.registry).
        job_kinds.register_kinds()

        # Drift that shows itself (docs/drift.md); check_drift itself says "off" at 0 minutes.
        minutes = settings.CONVAI_ADMIN_DRIFT_CHECK_MINUTES
        periodic.register(
            "characters.check_drift",
            every=timedelta(minutes=minutes or 30),
            func=drift.check_drift,
        )
        # Creates, clones and deletes whose request died; save claims a dead server left
        # behind (docs/characters.md).
        periodic.register(
            "characters.reconcile_pending_operations",
            every="CHARACTER_RECONCILE_INTERVAL",
            func=reconciliation.reconcile_pending_operations,
        )
        # Bundle uploads nobody confirmed within CONVAI_BUNDLE_UPLOAD_TTL_SECONDS (docs/bundles.md).
        periodic.register(
            "characters.prune_expired_uploads",
            every="CONVAI_BUNDLE_PRUNE_INTERVAL_SECONDS",
            func=uploads.prune_expired_uploads,
        )
        # The overview's dashboard and the read-only warnings of teams and keys (their hooks).
        from . import hooks

        hooks.register()
