"""django-axes is gone (docs/accounts.md): its tables, where an install still has them, go
too. Uninstalling an app leaves its tables behind; these held usernames and IP addresses of
failed sign-ins, which nothing reads any more. Nothing to undo: the reverse is a no-op."""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def drop_axes_tables(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    connection = schema_editor.connection
    tables = sorted(
        (name for name in connection.introspection.table_names() if name.startswith("axes_")),
        reverse=True,  # axes_accessattemptexpiration before the axes_accessattempt it points to
    )
    cascade = " CASCADE" if connection.vendor == "postgresql" else ""
    for table in tables:
        schema_editor.execute(f"DROP TABLE {schema_editor.quote_name(table)}{cascade}")
    if tables:
        schema_editor.execute("DELETE FROM django_migrations WHERE app = %s", ["axes"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_password_change_failure_counter")]

    operations = [migrations.RunPython(drop_axes_tables, migrations.RunPython.noop)]
