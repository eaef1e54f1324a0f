"""django-tasks-db stores a task's dotted path with each queued task: the job tasks that moved
into characters/bulk/ and characters/bundles/ keep running when queued under their old paths
(characters migration 0009 rewrites them)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django_tasks_db.models import DBTaskResult

from characters.bulk import importing, syncing
from characters.bundles.importing import import_bundle
from characters.models import Character
from jobs.models import Job
from teams.models import Membership
from tests.jobs.support import fresh, run_worker, seed_remote
from tests.support.characters import Key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]

moved = importlib.import_module("characters.migrations.0009_move_job_task_paths")


def test_the_migration_names_where_each_task_lives_now() -> None:
    assert sorted(moved.MOVED.values()) == sorted(
        task.module_path for task in (importing.import_all, syncing.sync_all, import_bundle)
    )


def test_an_import_queued_under_the_old_path_runs_after_the_upgrade(
    editor: Membership, editor_key: Key
) -> None:
    remote = seed_remote(editor_key, 3)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    # As it was queued before the upgrade.
    queued = DBTaskResult.objects.filter(task_path=importing.import_all.module_path)
    assert queued.update(task_path="characters.bulk.import_all") == 1

    moved.forwards(apps, None)
    run_worker()

    assert fresh(job).state == Job.State.DONE
    assert Character.objects.filter(team=editor.team).count() == 3
    moved.backwards(apps, None)
    assert DBTaskResult.objects.get().task_path == "characters.bulk.import_all"
