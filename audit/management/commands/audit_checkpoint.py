"""Write a checkpoint of every chain head now (run it daily from cron, so a quiet chain still
has a recent checkpoint in the server log)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.chain import checkpoint_all
from audit.models import CheckpointKind


class Command(BaseCommand):
    help = "Log (and store) a signed checkpoint of every audit chain's head."

    def handle(self, *args: Any, **options: Any) -> None:
        line = checkpoint_all(CheckpointKind.DAILY)
        self.stdout.write(line)
