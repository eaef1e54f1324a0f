"""A web process that test_killed_requests.py kills: run as a subprocess,
`python -m tests.characters.killed_driver COMMAND JSON`, against the database and sandbox the
environment names. Prints one JSON line per step.

- `start`: make a team, an Editor and their verified key (and, for clone or delete, a
  character), print what it made, wait for a line on stdin, then run the operation: the test
  kills this process with SIGKILL while Convai is answering.
- `after`: what the dashboard holds after the kill, the same form sent again, one pass of
  reconcile_pending_operations, what it holds then, and the form sent once more.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

FIELDS = {
    "name": "Killed Kim",
    "voice_type": "MALE",
    "backstory": "Created while the server died.",
    "actions": ["Wave"],
    "language_codes": [],
}


def _say(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")
    sys.stdout.flush()


def _operate(kind: str, member: Any, args: dict[str, Any]) -> str:
    """Run the operation with the form's token; the name of how it ended."""
    from characters import copying, errors, services

    try:
        if kind == "create":
            services.create_character(
                actor=member, api_key_id=args["api_key"], token=args["token"], **FIELDS
            )
        elif kind == "clone":
            copying.clone_character(
                actor=member,
                character_id=args["character"],
                new_name="Killed Kim (copy)",
                token=args["token"],
            )
        else:
            services.delete_character(
                actor=member,
                character_id=args["character"],
                confirm_name=FIELDS["name"],
                token=args["token"],
            )
    except errors.CharacterError as error:
        return type(error).__name__
    return "sent"


def _state(team_id: int) -> dict[str, Any]:
    from audit.models import AuditEvent
    from characters.models import Character, PendingOperation, Revision

    return {
        "operations": list(
            PendingOperation.objects.filter(team_id=team_id)
            .order_by("pk")
            .values("kind", "state", "name", "result_id", "character_id", "message")
        ),
        "characters": list(
            Character.objects.filter(team_id=team_id)
            .order_by("pk")
            .values("pk", "convai_id", "name", "deleted_at", "created_by_id", "version")
        ),
        "revisions": list(
            Revision.objects.filter(character__team_id=team_id)
            .order_by("character_id", "number")
            .values("character_id", "number", "reason", "note", "created_by_id")
        ),
        "events": [
            {
                "action": event.action,
                "outcome": event.outcome,
                "actor": event.actor_label,
                "recovered": bool(event.details.get("recovered")),
            }
            for event in AuditEvent.objects.filter(team_id=team_id, target_type="character")
            .exclude(action="api_key.used")
            .order_by("pk")
        ],
    }


def start(kind: str, args: dict[str, Any]) -> None:
    from characters import services
    from keys.services import add_api_key
    from teams.models import Role
    from tests.factories import MembershipFactory

    member = MembershipFactory.create(role=Role.EDITOR)
    api_key = add_api_key(actor=member.user, label="Killed key", raw_key=args["raw_key"])
    made: dict[str, Any] = {
        "team": member.team_id,
        "user": member.user_id,
        "api_key": str(api_key.pk),
    }
    if kind != "create":
        source = services.create_character(actor=member, api_key_id=api_key.pk, **FIELDS)
        made.update(character=source.character.pk, convai_id=source.character.convai_id)
    _say(made)
    sys.stdin.readline()  # the test sets the latency, then says go
    _say({"finished": _operate(kind, member, {**args, **made})})


def after(kind: str, args: dict[str, Any]) -> None:
    from characters import reconciliation
    from teams.models import Membership

    member = Membership.objects.get(team_id=args["team"], user_id=args["user"])
    _say(
        {
            "before": _state(args["team"]),
            "resent_before": _operate(kind, member, args),
            "summary": reconciliation.reconcile_pending_operations(),
            "after": _state(args["team"]),
            "resent_after": _operate(kind, member, args),
        }
    )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "convai_admin.settings")
    import django

    django.setup()
    command, kind, payload = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    {"start": start, "after": after}[command](kind, payload)
