"""A team full of fake characters, FOR BENCHMARKS ONLY (`make bench`, tests/bench/).

Bulk inserts (COPY on PostgreSQL, tests/bench/copy_rows.py), no Convai call, no audit
events: the rows are made up and never existed on Convai. It lives here, not in a product
app, so no deployment ships it: the benchmarks call `seed_characters(...)` in their own
throwaway database.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from characters.models import Character, Revision, sort_name_for
from convai import public_tables
from keys import crypto
from keys.models import ApiKey
from teams.models import Membership, Role, Team

from .copy_rows import insert_rows

BATCH_SIZE = 10_000
FAKE_KEY_LABEL = "Benchmark key (fake, never sent to Convai)"

TITLES = ("", "", "", "Captain ", "Doctor ", "Sister ", "Old ", "Young ", "Lady ", "Sir ")
FIRST = (
    "Mara", "Tobias", "Ines", "Kofi", "Yuki", "Aleksander", "Priya", "Jonah", "Leila", "Marek",
    "Sofia", "Emeka", "Hana", "Rafael", "Astrid", "Dmitri", "Amara", "Felix", "Noor", "Elias",
    "Zanele", "Oskar", "Mei", "Tariq", "Greta", "Mateo", "Aiyana", "Bruno", "Keiko", "Lucan",
)  # fmt: skip
LAST = (
    "Voss", "Okafor", "Lindqvist", "Tanaka", "Moreau", "Haddad", "Kowalski", "Reyes", "Brandt",
    "Nakamura", "Oyelaran", "Castellanos", "Ferreira", "Novak", "Ashford", "Delacroix", "Ivers",
    "Quill", "Sato", "Whitlock", "Zeller", "Abara", "Marsh", "Holloway", "Rinaldi", "Stroud",
)  # fmt: skip
ROLES = (
    "the blacksmith", "the ferry pilot", "the archivist", "the innkeeper", "the cartographer",
    "the station AI", "the tour guide", "the quartermaster", "the botanist", "the bard",
    "the customs officer", "the lighthouse keeper", "the medic", "the museum docent",
    "the racing engineer", "the street vendor", "the village elder", "the tutor",
)  # fmt: skip
SENTENCES = (
    "{name} grew up in a harbour town where the fog never quite lifted.",
    "Every morning {name} climbs the lighthouse stairs and counts the ships.",
    "{name} keeps a ledger of every favour owed and every favour repaid.",
    "Nobody remembers {name} arriving; it feels as if {name} was always here.",
    "{name} speaks softly but has an opinion about everything, especially maps.",
    "A long scar on {name}'s left hand is a story told differently each time.",
    "{name} trains apprentices and expects them to ask questions, not to nod.",
    "When players ask for directions, {name} answers with a riddle first.",
    "{name} collects broken clocks and repairs them on slow afternoons.",
    "The guild once expelled {name}, and the reason is a closely kept secret.",
    "{name} is patient with newcomers and blunt with anyone who wastes time.",
    "Under the counter {name} keeps a tin of ginger biscuits for good customers.",
    "{name} has walked every road in the valley and knows where each one floods.",
    "{name} distrusts machines but will happily talk to the ship's computer.",
    "On festival nights {name} tells the legend of the drowned bell tower.",
    "{name} remembers every visitor's name and uses it a little too often.",
    "The old lighthouse is where {name} goes to think when the market is loud.",
    "{name} answers in short sentences unless the topic is food.",
    "{name} is saving money for a voyage to the northern islands.",
    "{name} never lies, but chooses very carefully what to leave out.",
    "A rival trader across the square makes {name} quietly furious.",
    "{name} is helping the player find a lost heirloom and knows more than they say.",
)  # fmt: skip
ACTIONS = (
    "Move To", "Pick Up", "Drop", "Follow", "Wave", "Give", "Open Door", "Sit", "Point At",
    "Dance", "Jump", "Nod",
)  # fmt: skip
REASONS = (
    Revision.Reason.CREATED,
    Revision.Reason.UPDATED,
    Revision.Reason.SYNCED,
    Revision.Reason.UPDATED,
    Revision.Reason.RESTORED,
)


@dataclass(frozen=True)
class Voice:
    value: str
    lang_codes: tuple[str, ...]


def load_voices() -> list[Voice]:
    """Convai's public voice table, with each voice's languages narrowed to the language
    table (what a real form would offer)."""
    known = {row["lang_code"] for row in public_tables.languages()}
    # A catalogue value longer than the column (one is 109 characters) would be refused by
    # PostgreSQL: leave those out of the fake data.
    limit = Character._meta.get_field("voice_type").max_length or 100
    voices = []
    for row in public_tables.voices():
        if len(row["voice_value"]) > limit:
            continue
        codes = tuple(code for code in row.get("lang_codes") or [] if code in known)
        voices.append(Voice(row["voice_value"], codes or ("en-US",)))
    return voices


def seed_characters(
    *,
    team: str,
    characters: int = 10_000,
    revisions: int = 5,
    owner: str = "bench-owner",
    seed: int = 7,
    replace: bool = False,
) -> str:
    """Fill team `team` (created, or reused when the slug exists, with an owner user who has
    no usable password and one fake API key that is never sent anywhere) with `characters`
    fake characters of `revisions` revisions each; the same `seed` makes the same data.
    `replace` deletes the team's characters first. Returns a one-line summary."""
    if characters < 0 or revisions < 0:
        raise ValueError("characters and revisions must not be negative.")
    started = time.perf_counter()
    with transaction.atomic():
        the_team, the_owner, api_key = _team(team, owner)
        if replace:
            Character.objects.filter(team=the_team).delete()
        rng = random.Random(seed)
        made = _characters(rng, the_team, the_owner, api_key, characters)
        insert_rows(Character, made)  # COPY on PostgreSQL; every row has its id after
        stored = 0
        batch: list[Revision] = []
        for character in made:
            batch.extend(_revisions(rng, character, the_owner, revisions))
            if len(batch) >= BATCH_SIZE:
                insert_rows(Revision, batch)
                stored += len(batch)
                batch = []
        insert_rows(Revision, batch)
        stored += len(batch)
    elapsed = time.perf_counter() - started
    return (
        f"Team {the_team.slug!r} (owner {the_owner.username!r}): {len(made):,} characters and "
        f"{stored:,} revisions inserted in {elapsed:.2f} s."
    )


def _team(slug: str, username: str) -> tuple[Team, User, ApiKey]:
    owner, _ = User.objects.get_or_create(
        username=username, defaults={"first_name": "Bench", "last_name": "Owner"}
    )
    if owner.has_usable_password():
        owner.set_unusable_password()
        owner.save(update_fields=["password"])
    team, _ = Team.objects.get_or_create(
        slug=slug, defaults={"name": f"Benchmark {slug}", "created_by": owner}
    )
    Membership.objects.update_or_create(team=team, user=owner, defaults={"role": Role.OWNER})
    api_key = ApiKey.objects.filter(owner=owner, label=FAKE_KEY_LABEL).first()
    if api_key is None:
        api_key = ApiKey(owner=owner, label=FAKE_KEY_LABEL, last_four="0000")
        api_key.verified_at = timezone.now()
        # Sealed with the real keyring when there is one, so the keyring check and key
        # rotation treat it like any other row; it decrypts to an obviously fake value.
        if (getattr(settings, "ENCRYPTION_KEYS", "") or "").strip():
            api_key.ciphertext = crypto.encrypt(
                "fake-benchmark-key-0000", associated_data=api_key.encryption_context
            )
            api_key.encryption_key_id = crypto.key_id_of(api_key.ciphertext) or ""
        api_key.save()
    return team, owner, api_key


def _characters(
    rng: random.Random, team: Team, owner: User, api_key: ApiKey, count: int
) -> list[Character]:
    voices = load_voices()
    # A team uses a few voices a lot and many rarely: weight a shuffled catalogue.
    order = rng.sample(voices, len(voices))
    weights = [1 / (rank + 1) for rank in range(len(order))]
    now = timezone.now()
    rows = []
    for index in range(count):
        name = f"{rng.choice(TITLES)}{rng.choice(FIRST)} {rng.choice(LAST)}, {rng.choice(ROLES)}"
        if index % 7 == 0:
            name += f" {index}"
        voice = rng.choices(order, weights)[0]
        wanted = min(len(voice.lang_codes), rng.randint(1, 3))
        codes = sorted(rng.sample(voice.lang_codes, wanted))
        short = name.split(",")[0]
        backstory = " ".join(
            sentence.format(name=short) for sentence in rng.sample(SENTENCES, rng.randint(3, 6))
        )
        actions = rng.sample(ACTIONS, rng.randint(0, 5))
        created = now - timedelta(days=rng.uniform(1, 720))
        updated = min(now, created + timedelta(days=rng.uniform(0, 400)))
        convai_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        rows.append(
            Character(
                team=team,
                convai_id=convai_id,
                name=name[:100],
                sort_name=sort_name_for(name[:100]),  # bulk_create skips save()
                voice_type=voice.value,
                backstory=backstory,
                actions=actions,
                language_codes=codes,
                bound_key=api_key,
                created_by=owner,
                created_at=created,
                updated_at=updated,
                synced_at=updated,
                snapshot=_snapshot(
                    convai_id, name, voice.value, backstory, actions, codes, created
                ),
                version=5,
            )
        )
    return rows


def _revisions(rng: random.Random, character: Character, owner: User, count: int) -> list[Revision]:
    rows = []
    span = character.updated_at - character.created_at
    for number in range(1, count + 1):
        fields = character.editable()
        if number < count:  # earlier revisions had a shorter backstory
            fields["backstory"] = fields["backstory"][: 80 + number * 40]
        rows.append(
            Revision(
                character=character,
                number=number,
                reason=REASONS[(number - 1) % len(REASONS)],
                fields=fields,
                snapshot={**character.snapshot, "backstory": fields["backstory"]},
                created_by=owner,
                created_at=character.created_at + span * (number - 1) / max(count - 1, 1),
            )
        )
    return rows


def _snapshot(
    convai_id: str,
    name: str,
    voice: str,
    backstory: str,
    actions: list[str],
    codes: list[str],
    created: datetime,
) -> dict[str, Any]:
    """The shape of a Convai `get` payload (see sandbox.emulator.full_item)."""
    return {
        "character_name": name,
        "user_id": "bench-user",
        "character_id": convai_id,
        "voice_type": voice,
        "timestamp": created.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "character_actions": actions,
        "character_emotions": [],
        "language_code": codes[0] if codes else "en-US",
        "language_codes": codes,
        "listing": "false",
        "model_details": {},
        "memory_settings": {"enabled": False},
        "last_interacted_with": None,
        "backstory": backstory,
    }
