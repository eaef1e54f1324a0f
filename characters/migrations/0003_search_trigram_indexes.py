"""Search over name and backstory (case-insensitive "contains", `search_contains` in
characters/lookups.py, ILIKE on PostgreSQL) from trigram indexes on PostgreSQL, so a selective
search reads a few index entries instead of every backstory. Other databases skip it.
Creating the pg_trgm extension needs a role that may create extensions.
"""

from django.db import migrations

INDEXES = (
    ("character_name_trgm", "name"),
    ("character_backstory_trgm", "backstory"),
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON characters_character "
            f"USING gin ({column} gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _column in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("characters", "0002_character_remote_missing_at")]

    operations = [migrations.RunPython(create, drop)]
