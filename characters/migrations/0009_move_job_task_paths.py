"""The job tasks moved with the bulk and bundle packages (characters/bulk/, characters/bundles/).
django-tasks-db stores each task's dotted path (DBTaskResult.task_path) and imports it when a
worker runs the task: a task queued before the upgrade would name a module that is gone. Its
path is rewritten here, for finished results too (the admin imports them)."""

from typing import Any

from django.db import migrations

MOVED = {
    "characters.bulk.import_all": "characters.bulk.importing.import_all",
    "characters.bulk.sync_all": "characters.bulk.syncing.sync_all",
    "characters.bundles.import_bundle": "characters.bundles.importing.import_bundle",
}


def _rename(apps: Any, renames: dict[str, str]) -> None:
    DBTaskResult = apps.get_model("django_tasks_database", "DBTaskResult")
    for old, new in renames.items():
        DBTaskResult.objects.filter(task_path=old).update(task_path=new)


def forwards(apps: Any, schema_editor: Any) -> None:
    _rename(apps, MOVED)


def backwards(apps: Any, schema_editor: Any) -> None:
    _rename(apps, {new: old for old, new in MOVED.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("characters", "0008_character_sort_name"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
