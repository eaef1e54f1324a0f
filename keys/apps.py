from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Personal Convai API keys"

    def ready(self) -> None:
        from convai_admin.health import register_readiness

        from . import checks  # (registers the keyring checks)

        register_readiness("keyring", checks.keyring_readiness)
