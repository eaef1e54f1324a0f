"""Factories for the test suite. No real secrets here: API keys in tests come from the
sandbox at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import factory
from factory.django import DjangoModelFactory

from accounts.models import User
from teams.models import Membership, Role, Team

if TYPE_CHECKING:  # for the quoted type arguments below (mypy reads them; ruff does not)
    from characters.models import Character, Revision  # noqa: F401

TEST_PASSWORD = "correct-horse-battery-9"


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password(TEST_PASSWORD)


class TeamFactory(DjangoModelFactory[Team]):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Studio {n}")
    slug = factory.Sequence(lambda n: f"studio-{n}")


class MembershipFactory(DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.EDITOR


class CharacterFactory(DjangoModelFactory["Character"]):
    """A local character record (no Convai call: for selectors, pages and query counts).
    `bound_key` is None unless given; `created_by` is a new user unless given."""

    class Meta:
        model = "characters.Character"

    team = factory.SubFactory(TeamFactory)
    convai_id = factory.Faker("uuid4")
    name = factory.Sequence(lambda n: f"Character {n}")
    voice_type = "MALE"
    backstory = factory.Faker("paragraph")
    actions = factory.LazyFunction(lambda: ["Wave"])
    language_codes = factory.LazyFunction(lambda: ["en-US"])
    bound_key = None
    created_by = factory.SubFactory(UserFactory)
    snapshot = factory.LazyAttribute(
        lambda c: {
            "character_id": c.convai_id,
            "character_name": c.name,
            "voice_type": c.voice_type,
            "backstory": c.backstory,
            "character_actions": list(c.actions),
            "language_codes": list(c.language_codes),
        }
    )


class RevisionFactory(DjangoModelFactory["Revision"]):
    """A revision of a character; numbers follow on per factory sequence unless given."""

    class Meta:
        model = "characters.Revision"

    character = factory.SubFactory(CharacterFactory)
    number = factory.Sequence(lambda n: n + 1)
    reason = "updated"
    fields = factory.LazyAttribute(lambda r: r.character.editable())
    snapshot = factory.LazyAttribute(lambda r: dict(r.character.snapshot))
    created_by = factory.LazyAttribute(lambda r: r.character.created_by)
