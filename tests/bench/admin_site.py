"""The Django admin a team would otherwise reach for, over the same characters: registered on a
benchmark-only AdminSite (the product ships no admin). Imported only inside the benchmark
process, after it has added django.contrib.admin to INSTALLED_APPS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from characters.models import Character


class BenchAdminSite(admin.AdminSite):
    site_header = "Benchmark admin (not part of the product)"


site = BenchAdminSite(name="bench_admin")

if TYPE_CHECKING:
    CharacterModelAdmin = admin.ModelAdmin[Character]
else:  # ModelAdmin is generic only in the type stubs
    CharacterModelAdmin = admin.ModelAdmin


@admin.register(Character, site=site)
class CharacterAdmin(CharacterModelAdmin):
    # The product list's columns: name, voice, languages, bound key, last synced, created by.
    list_display = ("name", "voice_type", "languages", "bound_key_label", "synced_at", "created_by")
    list_select_related = ("bound_key", "bound_key__owner", "created_by")
    search_fields = ("name", "backstory")
    list_filter = ("voice_type",)
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

    @admin.display(description="Languages")
    def languages(self, character: Character) -> str:
        return ", ".join(character.language_codes or [])

    @admin.display(description="Bound key")
    def bound_key_label(self, character: Character) -> str:
        key = character.bound_key
        if key is None:
            return "—"
        return f"{key.label} …{key.last_four} ({key.owner})"
