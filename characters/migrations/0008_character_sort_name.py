"""The list's natural name order ("NPC 2" before "NPC 10"): a stored, indexed sort key filled
for the existing characters (saves keep it from now on)."""

from typing import Any

from django.db import migrations, models

from characters.models import sort_name_for

BATCH = 2000


def fill_sort_names(apps: Any, schema_editor: Any) -> None:
    Character = apps.get_model("characters", "Character")
    batch = []
    for character in Character.objects.only("pk", "name").iterator(chunk_size=BATCH):
        character.sort_name = sort_name_for(character.name)
        batch.append(character)
        if len(batch) >= BATCH:
            Character.objects.bulk_update(batch, ["sort_name"])
            batch = []
    if batch:
        Character.objects.bulk_update(batch, ["sort_name"])


class Migration(migrations.Migration):
    dependencies = [
        ("characters", "0007_save_claim_and_pending_operations"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="character",
            name="character_live_name",
        ),
        migrations.AddField(
            model_name="character",
            name="sort_name",
            field=models.CharField(blank=True, editable=False, max_length=300),
        ),
        migrations.RunPython(fill_sort_names, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="character",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", True)),
                fields=["team", "sort_name", "id"],
                name="character_live_sort_name",
            ),
        ),
    ]
