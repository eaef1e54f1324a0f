"""Seal the two-factor secrets that allauth stored in clear (TOTP seeds, recovery-code seeds)
with the ENCRYPTION_KEYS keyring, all at once: from this migration on, MFAAdapter.decrypt
accepts only the sealed form (docs/accounts.md). Backwards, they are stored in clear again."""

from django.db import migrations


def seal(apps, schema_editor):
    from accounts.mfa_secrets import seal_clear_secrets

    seal_clear_secrets(apps.get_model("mfa", "Authenticator"))


def unseal(apps, schema_editor):
    from accounts.mfa_secrets import open_sealed_secrets

    open_sealed_secrets(apps.get_model("mfa", "Authenticator"))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_drop_django_axes_tables"),
        ("mfa", "0003_authenticator_type_uniq"),
    ]

    operations = [migrations.RunPython(seal, unseal)]
