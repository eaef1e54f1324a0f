"""`manage.py check_drift`: one drift pass now (the scheduler runs the same every
CONVAI_ADMIN_DRIFT_CHECK_MINUTES), for operators and cron."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from characters.drift import run_drift_pass


class Command(BaseCommand):
    help = "Compare every usable key's characters with Convai once and mark those changed there."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(run_drift_pass().summary())
