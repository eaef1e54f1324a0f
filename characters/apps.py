from django.apps import AppConfig


class CharactersConfig(AppConfig):
    name = "characters"

    def ready(self) -> None:
        from . import lookups  # noqa: F401  (registers search_contains)
