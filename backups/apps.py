from django.apps import AppConfig


class BackupsConfig(AppConfig):
    """Backup and restore of a whole install (manage.py backup / restore; docs/backup.md)."""

    name = "backups"
