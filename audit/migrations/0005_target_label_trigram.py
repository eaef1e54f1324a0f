"""Plain words in the audit log's search match target names (`target_label__icontains`,
audit/selectors.py), which Django writes on PostgreSQL as UPPER(target_label::text) LIKE
UPPER(pattern). Without an index on that expression, a word that few events (or none) carry
read the team's whole log, newest first: 0.6 s over a million events, and growing with the
log (docs/benchmarks.md, issue 14). A trigram GIN index on the same expression answers it from
the index. Other databases skip it. Creating the pg_trgm extension needs a role that may
create extensions (as characters' migration 0003); building the index takes a few seconds
per million events, during which new events wait.
"""

from django.db import migrations

INDEX = "audit_target_label_trgm"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON audit_auditevent "
        "USING gin ((UPPER(target_label::text)) gin_trgm_ops)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_seal_checkpoint")]

    operations = [migrations.RunPython(create, drop)]
