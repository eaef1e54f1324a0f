"""The Django admin a team would otherwise reach for, over the same characters: registered on a
benchmark-only AdminSite (the product ships no admin). Imported only inside the benchmark
process, after it has added django.contrib.admin to INSTALLED_APPS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from characters.catalogue import display_names
from characters.models import Character


class BenchAdminSite(admin.AdminSite):
    site_header = "Benchmark admin (not part of the product)"


site = BenchAdminSite(name="bench_admin")

if TYPE_CHECKING:
    CharacterModelAdmin = admin.ModelAdmin[Character]
else:  # ModelAdmin is generic only in the type stubs
    CharacterModelAdmin = admin.ModelAdmin


class VoiceFilter(admin.SimpleListFilter):
    """The voices in use, by their catalogue names (the product's voice filter shows names
    too); `?voice_type=<value>` as a field filter would take it."""

    title = "voice"
    parameter_name = "voice_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        voice_names, _ = display_names()
        used = (
            model_admin.get_queryset(request)
            .order_by()
            .values_list("voice_type", flat=True)
            .distinct()
        )
        return sorted(
            ((v, (voice_names.get(v) or {}).get("name") or v) for v in used if v),
            key=lambda choice: choice[1].lower(),
        )

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(voice_type=value) if value else queryset


@admin.register(Character, site=site)
class CharacterAdmin(CharacterModelAdmin):
    # The product list's columns: name, voice, languages, bound key, last synced, created by.
    # Voices and languages by their catalogue names, as the product shows them (the sandbox's
    # catalogue: the seeded characters use its few hundred voices).
    list_display = ("name", "voice", "languages", "bound_key_label", "synced_at", "created_by")
    list_select_related = ("bound_key", "bound_key__owner", "created_by")
    search_fields = ("name", "backstory")
    list_filter = (VoiceFilter,)
    list_per_page = 50
    ordering = ("sort_name", "pk")  # the product's default sort, so both show the same rows
    # Foreign keys to big tables as ID inputs, as any admin of this model would set them: a
    # <select> of 10,000 characters for the lineage field would measure nothing useful.
    raw_id_fields = ("copied_from", "bound_key", "created_by", "deleted_by", "team")

    # The team whose characters are shown: an admin in a multi-team install has to scope its
    # rows the same way, and this lets it use the same (team, deleted_at, name) index.
    team_id: int | None = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Character]:
        # The product lists the team's live characters only.
        return super().get_queryset(request).filter(team_id=self.team_id, deleted_at__isnull=True)

    @admin.display(description="Voice", ordering="voice_type")
    def voice(self, character: Character) -> str:
        voice_names, _ = display_names()
        return (voice_names.get(character.voice_type) or {}).get("name") or character.voice_type

    @admin.display(description="Languages")
    def languages(self, character: Character) -> str:
        _, language_names = display_names()
        return ", ".join(language_names.get(c, c) for c in character.language_codes or [])

    @admin.display(description="Bound key")
    def bound_key_label(self, character: Character) -> str:
        key = character.bound_key
        if key is None:
            return "—"
        return f"{key.label} …{key.last_four} ({key.owner})"
