from django.apps import AppConfig


class BuildsConfig(AppConfig):
    name = "builds"

    def ready(self) -> None:
        from jobs import periodic

        from . import hooks, services

        # Minted tokens past their expiry and old rate-limit windows (docs/builds.md); the
        # same pass retries revoking the tokens of revoked builds that Convai did not take.
        periodic.register(
            "builds.tidy", every="CONVAI_BUILD_TIDY_SECONDS", func=services.tidy_minted_tokens
        )
        # The warnings of keys and teams about builds that stop with a key (their hooks).
        hooks.register()
