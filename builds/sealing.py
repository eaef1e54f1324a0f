"""The builds' values sealed with the ENCRYPTION_KEYS keyring: each HS256 build's player
secret and the minted tokens kept for revocation. Registered with keys (keys.hooks) so that
the key-ID check counts their key IDs and `manage.py rotate_encryption_keys` re-seals them."""

from __future__ import annotations

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from convai_admin import encryption
from keys.hooks import SealedStore, StoreRotation

from .models import Build, MintedToken


def stored_key_ids() -> set[str]:
    values = [
        *Build.objects.exclude(player_secret_ciphertext="")
        .values_list("player_secret_ciphertext", flat=True)
        .iterator(chunk_size=500),
        *MintedToken.objects.values_list("ciphertext", flat=True).iterator(chunk_size=500),
    ]
    return {key_id for value in values if (key_id := encryption.key_id_of(value))}


@sensitive_variables()
def rotate(active_id: str) -> StoreRotation:
    """Re-seal every value not on the active key; each row locked and rewritten in its own
    transaction, an unreadable one left as it is and counted."""
    result = StoreRotation()
    for pk in Build.objects.exclude(player_secret_ciphertext="").values_list("pk", flat=True):
        with transaction.atomic():
            build = Build.objects.select_for_update().filter(pk=pk).first()
            if build is None or not build.player_secret_ciphertext:
                continue
            _reseal(build, "player_secret_ciphertext", build.secret_context, active_id, result)
    for minted_pk in MintedToken.objects.values_list("pk", flat=True):
        with transaction.atomic():
            minted = MintedToken.objects.select_for_update().filter(pk=minted_pk).first()
            if minted is not None:
                _reseal(minted, "ciphertext", minted.encryption_context, active_id, result)
    return result


@sensitive_variables()
def _reseal(
    row: Build | MintedToken, field: str, context: bytes, active_id: str, result: StoreRotation
) -> None:
    value = getattr(row, field)
    if encryption.key_id_of(value) == active_id:
        result.already_current += 1
        return
    try:
        clear = encryption.decrypt(value, associated_data=context)
    except encryption.DecryptionError:
        result.failed += 1
        return
    setattr(row, field, encryption.encrypt(clear, associated_data=context))
    row.save(update_fields=[field])
    result.rotated += 1


STORE = SealedStore(key_ids=stored_key_ids, rotate=rotate)
