from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self) -> None:
        from convai_admin.health import register_readiness

        from . import checks  # (registers the audit key checks)

        register_readiness("audit_keys", checks.audit_keys_readiness)
