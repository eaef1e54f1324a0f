"""`make run` calls this: make sure a demo login with a team and a working sandbox key exists.

Idempotent — re-running keeps every piece of data; it only fills in what is missing.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.models import ApiKey, Membership, Role, Team, User

DEMO_USERNAME = "demo"
DEMO_TEAM = ("Demo Studio", "demo-studio")


class Command(BaseCommand):
    help = "Create the demo login, its team and a verified sandbox API key if missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.CONVAI_SANDBOX:
            raise CommandError("The demo needs the Convai sandbox: set CONVAI_SANDBOX=1.")
        password = os.environ.get("CONVAI_ADMIN_DEMO_PASSWORD", "")
        if not password:
            raise CommandError("CONVAI_ADMIN_DEMO_PASSWORD is not set (see .env).")

        with transaction.atomic():
            user, created = User.objects.get_or_create(
                username=DEMO_USERNAME,
                defaults={"first_name": "Demo", "last_name": "User", "is_staff": False},
            )
            if created:
                user.set_password(password)
                user.save(update_fields=["password"])
            if not Membership.objects.filter(user=user).exists():
                team, _ = Team.objects.get_or_create(
                    slug=DEMO_TEAM[1], defaults={"name": DEMO_TEAM[0], "created_by": user}
                )
                Membership.objects.create(team=team, user=user, role=Role.OWNER)

        if not ApiKey.objects.filter(owner=user, revoked_at__isnull=True).exists():
            self._give_sandbox_key(user)

        url = options["url"]
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Convai Admin is starting at {url}"))
        self.stdout.write(f"  Sign in as: {DEMO_USERNAME}")
        self.stdout.write(f"  Password:   {password}   (from .env, unless you changed it)")
        self.stdout.write("  The Convai sandbox is on: no Convai account or network needed.")
        self.stdout.write("")

    def _give_sandbox_key(self, user: User) -> None:
        from accounts.key_services import add_api_key, mark_verified_without_call
        from sandbox.services import create_sandbox_key

        raw = create_sandbox_key(label="demo")
        api_key = add_api_key(user, "Sandbox key", raw, skip_verification=True)
        del raw
        mark_verified_without_call(api_key, reason="issued by the built-in sandbox")
