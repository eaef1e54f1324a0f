"""`sandbox_key create --label NAME [--account ACCOUNT]` prints a new sandbox key alone on the
last line (scripts read it from there); `list` and `revoke` manage them. Keys are never shown
again. Keys created with the same `--account` belong to one remote account and see the same
characters; without it, every key is an account of its own (set plans and usage with
`sandbox_account`)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sandbox.models import SandboxKey
from sandbox.services import create_sandbox_key, revoke_sandbox_keys


class Command(BaseCommand):
    help = "Create, list or revoke keys of the offline Convai sandbox."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a key (by default, a new account).")
        create.add_argument("--label", required=True, help="A name to recognise the key by.")
        create.add_argument(
            "--account",
            default=None,
            help="Join this account (created if new) instead of starting a new one.",
        )
        actions.add_parser("list", help="List keys (labels and usage; keys are not stored).")
        revoke = actions.add_parser(
            "revoke", help="Delete every key with this label (and accounts left without keys)."
        )
        revoke.add_argument("--label", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            try:
                raw_key = create_sandbox_key(options["label"], account=options["account"])
            except ValueError as error:
                raise CommandError(str(error)) from None
            self.stdout.write(
                f"Created sandbox key '{options['label'].strip()}'. It is shown only once; "
                "add it on the dashboard's API keys page:"
            )
            self.stdout.write(raw_key)
        elif action == "list":
            for key in SandboxKey.objects.select_related("account"):
                self.stdout.write(
                    f"{key.label}\taccount {key.account.name} (user {key.account.user_id})\t"
                    f"{key.request_count} requests\tcreated {key.created_at:%Y-%m-%d %H:%M}"
                )
        else:
            count = revoke_sandbox_keys(options["label"])
            self.stdout.write(f"Deleted {count} object(s) for label '{options['label']}'.")
