from django.apps import AppConfig


class BuildsConfig(AppConfig):
    name = "builds"

    def ready(self) -> None:
        from jobs import periodic
        from keys.hooks import register_sealed_store

        from . import hooks, sealing, services

        # Minted tokens past their expiry and old rate-limit windows (docs/builds.md); the
        # same pass retries revoking the tokens of revoked builds that Convai did not take.
        periodic.register(
            "builds.tidy", every="CONVAI_BUILD_TIDY_SECONDS", func=services.tidy_minted_tokens
        )
        # The warnings of keys and teams about builds that stop with a key (their hooks).
        hooks.register()
        # Player secrets and kept tokens, sealed with the keyring: counted by the key-ID check
        # and re-sealed by rotate_encryption_keys (keys.hooks).
        register_sealed_store("game builds", sealing.STORE)
