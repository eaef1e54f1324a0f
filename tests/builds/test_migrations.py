"""builds 0002: tokens kept before they could outlive their build get the build's ID (their
ciphertext's context) and the build's key (the key that minted them) when it runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from builds.models import MintedToken
from builds.services import Issued
from keys import crypto

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_migration_remembers_each_tokens_build_and_key(issued: Issued) -> None:
    executor = MigrationExecutor(connection)
    before = [("builds", "0001_initial")]
    latest = executor.loader.graph.leaf_nodes()  # every app's: later tests need them all
    executor.migrate(before)
    try:
        OldToken = executor.loader.project_state(before).apps.get_model("builds", "MintedToken")
        context = f"convai-admin:build-token:{issued.build.pk}".encode()
        row = OldToken.objects.create(
            build_id=issued.build.pk,
            ciphertext=crypto.encrypt("a-token", associated_data=context),
            expires_at=timezone.now() + timedelta(hours=1),
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    minted = MintedToken.objects.get(pk=row.pk)
    assert (minted.build_ref, minted.api_key_id) == (issued.build.pk, issued.build.api_key_id)
    minted.build = None  # as after its team's deletion: the context still holds
    assert crypto.decrypt(minted.ciphertext, associated_data=minted.encryption_context) == (
        "a-token"
    )
