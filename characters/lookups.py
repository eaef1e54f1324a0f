"""`field__search_contains`: case-insensitive "contains" that PostgreSQL can answer from a
trigram index.

Django writes `icontains` on PostgreSQL as UPPER(column::text) LIKE UPPER(pattern), which no
index serves: every search read every character (60+ ms over 10,000 backstories). ILIKE is the
same test, and pg_trgm's GIN indexes (migration 0003) answer it. Elsewhere it is `icontains`.

Registered on the fields that have those indexes only (Character.name and .backstory, in
characters/models.py), not on every CharField of every app.
"""

from __future__ import annotations

from typing import Any

from django.db.models.lookups import IContains


class SearchContains(IContains):
    lookup_name = "search_contains"

    def get_rhs_op(self, connection: Any, rhs: str) -> str:
        # Elsewhere exactly `icontains` (backends know operators by lookup name).
        return str(connection.operators["icontains"] % rhs)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        # process_rhs already wrapped and escaped the value for a "contains" pattern.
        return f"{lhs_sql} ILIKE {rhs_sql}", [*lhs_params, *rhs_params]
