"""Walk every audit chain and report any row that was edited or deleted behind our back."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditChain
from audit.services import verify_chain


class Command(BaseCommand):
    help = "Verify the hash chains of the audit log; exits non-zero if any chain is broken."

    def handle(self, *args: Any, **options: Any) -> None:
        scopes = list(AuditChain.objects.order_by("scope").values_list("scope", flat=True))
        broken = 0
        for scope in scopes:
            problems = verify_chain(scope)
            if problems:
                broken += 1
                for problem in problems:
                    self.stderr.write(problem)
        if broken:
            raise CommandError(f"{broken} of {len(scopes)} audit chain(s) are broken (see above).")
        self.stdout.write(self.style.SUCCESS(f"All {len(scopes)} audit chain(s) are intact."))
