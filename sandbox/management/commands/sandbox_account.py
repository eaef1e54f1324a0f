"""Set what the sandbox's usage endpoint (`POST /user/user-api-usage`) reports for an account:

    manage.py sandbox_account set NAME [--email E] [--plan "Professional"]
        [--renews-at 2030-01-31] [--limit core-api=5000] [--usage interactions=120] ...
    manage.py sandbox_account show [NAME]

`set` creates the account if it is new and changes only the options given; add keys to it
with `sandbox_key create --label L --account NAME`. Metric ids: interactions, core-api,
provider_pool_1, pixel_streaming. The sandbox counts core-api usage itself (one per
successful character call); the other metrics only change here."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sandbox.models import USAGE_METRICS, SandboxAccount
from sandbox.services import configure_sandbox_account


def _metric_values(pairs: list[str]) -> dict[str, int]:
    values: dict[str, int] = {}
    for pair in pairs:
        metric, _, number = pair.partition("=")
        try:
            values[metric.strip()] = int(number)
        except ValueError:
            raise CommandError(f"Expected METRIC=NUMBER, got {pair!r}.") from None
    return values


def _renewal(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--renews-at takes an ISO date or time, not {value!r}.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Create or change a sandbox account's email, plan, renewal date and quota "
        "(what /user/user-api-usage reports), or show accounts."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        configure = actions.add_parser("set", help="Create or change an account.")
        configure.add_argument("name", help="The account name (shown as user_name).")
        configure.add_argument("--email", default=None)
        configure.add_argument("--plan", default=None, help='Plan name, e.g. "Professional".')
        configure.add_argument("--renews-at", default=None, help="ISO date; UTC if no offset.")
        metric_help = f"METRIC=NUMBER, repeatable; metrics: {', '.join(USAGE_METRICS)}."
        configure.add_argument("--limit", action="append", default=[], help=metric_help)
        configure.add_argument("--usage", action="append", default=[], help=metric_help)
        show = actions.add_parser("show", help="Show accounts, their plan and quota.")
        show.add_argument("name", nargs="?", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "set":
            renews_at = _renewal(options["renews_at"]) if options["renews_at"] else None
            try:
                account = configure_sandbox_account(
                    options["name"],
                    email=options["email"],
                    plan_name=options["plan"],
                    renews_at=renews_at,
                    limits=_metric_values(options["limit"]),
                    usage=_metric_values(options["usage"]),
                )
            except ValueError as error:
                raise CommandError(str(error)) from None
            self.stdout.write(f"Account {self._describe(account)}")
            return
        accounts = SandboxAccount.objects.all()
        if options["name"]:
            accounts = accounts.filter(name=options["name"])
        if not accounts:
            self.stdout.write("No such account.")
        for account in accounts:
            self.stdout.write(self._describe(account))

    @staticmethod
    def _describe(account: SandboxAccount) -> str:
        renewal = f"{account.renews_at:%Y-%m-%d}" if account.renews_at else "never"
        quota = ", ".join(
            f"{metric} {getattr(account, usage)}/{getattr(account, limit)}"
            for metric, (limit, usage) in USAGE_METRICS.items()
        )
        return (
            f"{account.name} <{account.email}>: plan {account.plan_name}, renews {renewal}; {quota}"
        )
