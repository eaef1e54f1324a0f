"""Minted tokens outlive their build when its team is deleted, so that the periodic tidy-up
can still revoke them at Convai through the key that minted them (docs/builds.md)."""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def remember_build_and_key(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    MintedToken = apps.get_model("builds", "MintedToken")
    for minted in MintedToken.objects.select_related("build").iterator(chunk_size=500):
        minted.build_ref = minted.build_id
        minted.api_key_id = minted.build.api_key_id if minted.build is not None else None
        minted.save(update_fields=["build_ref", "api_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("builds", "0001_initial"),
        ("keys", "0003_api_key_fingerprint"),
    ]

    operations = [
        migrations.AddField(
            model_name="mintedtoken",
            name="build_ref",
            field=models.UUIDField(null=True),
        ),
        migrations.AddField(
            model_name="mintedtoken",
            name="api_key",
            field=models.ForeignKey(
                null=True,
                on_delete=models.deletion.SET_NULL,
                related_name="+",
                to="keys.apikey",
            ),
        ),
        migrations.RunPython(remember_build_and_key, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="mintedtoken",
            name="build_ref",
            field=models.UUIDField(),
        ),
        migrations.AlterField(
            model_name="mintedtoken",
            name="build",
            field=models.ForeignKey(
                null=True,
                on_delete=models.deletion.SET_NULL,
                related_name="minted_tokens",
                to="builds.build",
            ),
        ),
    ]
