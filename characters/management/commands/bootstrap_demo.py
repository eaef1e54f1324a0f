"""`make run` calls this: make sure a demo login with a team and a working sandbox key exists.

Idempotent — re-running keeps every piece of data; it only fills in what is missing. The team
is created through the same service as everyone's (and so is audited).
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from audit.context import audit_context
from characters.importing import record_existing
from characters.models import Character
from convai.types import AccountUsage, CharacterDetails
from keys.models import ApiKey
from teams.models import Membership
from teams.services import create_team

DEMO_USERNAME = "demo"
DEMO_TEAM = ("Demo Studio", "demo-studio")
DEMO_CHARACTERS = [
    (
        "Captain Mira Vance",
        "AriaNeural",
        "Mira commands the salvage ship Kestrel.\nShe is curt with strangers, loyal to her "
        "crew, and owes a debt to the harbour master she would rather not talk about.",
        "Wave, Point, Salute",
    ),
    (
        "Old Tomas the Innkeeper",
        "DavisNeural",
        "Tomas has kept the Drowned Lantern inn for forty years. He knows every rumour in "
        "the port and trades them for stories.",
        "Pour drink, Nod",
    ),
    (
        "Unit K-7",
        "GuyNeural",
        "A maintenance robot who guides visitors through the station and insists the "
        "coffee machine is sentient.",
        "Follow, Open door",
    ),
]


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

        with audit_context(origin="command bootstrap_demo"):
            user, created = User.objects.get_or_create(
                username=DEMO_USERNAME,
                defaults={"first_name": "Demo", "last_name": "User", "is_staff": False},
            )
            if created:
                user.set_password(password)
                user.save(update_fields=["password"])
            if not Membership.objects.filter(user=user).exists():
                create_team(actor=user, name=DEMO_TEAM[0], slug=DEMO_TEAM[1])
            if not ApiKey.objects.filter(owner=user, revoked_at__isnull=True).exists():
                self._give_sandbox_key(user)
            membership = Membership.objects.filter(user=user).select_related("team").first()
            if (
                membership is not None
                and not Character.objects.filter(team=membership.team).exists()
            ):
                self._seed_characters(membership)

        url = options["url"]
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Convai Admin is starting at {url}"))
        self.stdout.write(f"  Sign in as: {DEMO_USERNAME}")
        self.stdout.write(f"  Password:   {password}   (from .env, unless you changed it)")
        self.stdout.write("  The Convai sandbox is on: no Convai account or network needed.")
        self.stdout.write("")

    def _give_sandbox_key(self, user: User) -> None:
        from keys.services import add_api_key, mark_verified_without_call
        from sandbox.services import create_sandbox_key

        raw = create_sandbox_key(label="demo", account="Demo Studio")
        api_key = add_api_key(actor=user, label="Sandbox key", raw_key=raw, skip_verification=True)
        mark_verified_without_call(
            api_key, reason="issued by the built-in sandbox", usage=self._sandbox_usage(raw)
        )
        self._sandbox_raw_key = raw

    @staticmethod
    def _sandbox_usage(raw: str) -> AccountUsage | None:
        """What /user/user-api-usage would answer for this key (the server is not up yet)."""
        from sandbox import emulator
        from sandbox.services import authenticate

        sandbox_key = authenticate(raw)
        if sandbox_key is None:
            return None
        return AccountUsage.from_payload(emulator.account_usage(sandbox_key, {}))

    def _seed_characters(self, membership: Membership) -> None:
        """A few characters, so a new user sees the product working. They are created in the
        sandbox directly (its server is not up yet: this runs before `runserver`) and recorded
        here as imported, through the same service as any import."""
        from sandbox import emulator
        from sandbox.services import authenticate, create_sandbox_key

        raw = getattr(self, "_sandbox_raw_key", None) or create_sandbox_key(
            label="demo", account="Demo Studio"
        )
        sandbox_key = authenticate(raw)
        api_key = (
            ApiKey.objects.filter(owner=membership.user, revoked_at__isnull=True)
            .order_by("created_at")
            .first()
        )
        if sandbox_key is None or api_key is None:
            return
        if getattr(self, "_sandbox_raw_key", None) is None:
            # The demo's stored key is another sandbox key: bind the seeds to the new one.
            from keys.services import add_api_key, mark_verified_without_call

            api_key = add_api_key(
                actor=membership.user,
                label="Sandbox key (demo characters)",
                raw_key=raw,
                skip_verification=True,
            )
            mark_verified_without_call(
                api_key, reason="issued by the built-in sandbox", usage=self._sandbox_usage(raw)
            )
        for name, voice, backstory, actions in DEMO_CHARACTERS:
            created = emulator.create(
                sandbox_key,
                {"charName": name, "voiceType": voice, "backstory": backstory, "actions": actions},
            )
            payload = emulator.get(sandbox_key, {"charID": created["charID"]})
            record_existing(
                actor=membership,
                api_key=api_key,
                details=CharacterDetails.from_payload(payload),
                origin_note="demo character created by bootstrap_demo",
            )
