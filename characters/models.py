"""The team's characters as the dashboard keeps them, and their revisions.

A `Character` mirrors one remote Convai character for one team: the fields we edit, the key that
owns it on Convai (`bound_key`), and `snapshot`, the whole last payload Convai returned (with
secret-bearing values redacted), so drift, diffs and exports see everything, not only what we
edit. `version` counts saves (optimistic concurrency: a form carries the version it was opened
at). Deleting leaves a tombstone, so the page, the history and the audit stay readable.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .lookups import SearchContains

SORT_NAME_LENGTH = 300
_DIGITS = re.compile(r"\d+")


def sort_name_for(name: str) -> str:
    """The list's natural order as a plain string the database can index: case folded, every
    run of digits zero-padded to 12, so "NPC 2" < "NPC 10" in any collation-free comparison."""
    padded = _DIGITS.sub(lambda digits: digits.group().lstrip("0").rjust(12, "0"), name.casefold())
    return padded[:SORT_NAME_LENGTH]


# The fields the list's filter options (CharacterFacets) are computed from.
FACET_FIELDS = frozenset(
    {"team", "team_id", "voice_type", "language_codes", "bound_key", "bound_key_id", "deleted_at"}
)

# The fields a member edits, in the order pages show them.
EDITABLE_FIELDS: tuple[str, ...] = ("name", "voice_type", "backstory", "actions", "language_codes")


class Character(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="characters")
    convai_id = models.CharField("Convai character ID", max_length=64)
    name = models.CharField(max_length=100)
    # `name` in natural order (sort_name_for), kept by save(): what the list sorts by.
    sort_name = models.CharField(max_length=SORT_NAME_LENGTH, blank=True, editable=False)
    voice_type = models.CharField(max_length=255, blank=True)
    backstory = models.TextField(blank=True)
    actions = models.JSONField(default=list, blank=True)
    language_codes = models.JSONField(default=list, blank=True)
    bound_key = models.ForeignKey(
        "keys.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="characters",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    synced_at = models.DateTimeField(null=True, blank=True)
    snapshot = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)
    # Language codes chosen at creation that Convai has not accepted yet (the follow-up update
    # failed): shown as a warning with a retry, never silently dropped.
    pending_language_codes = models.JSONField(null=True, blank=True)
    # When Convai answered that it no longer has the character (deleted there, behind our back):
    # it stays listed and readable until someone removes it from the team.
    remote_missing_at = models.DateTimeField(null=True, blank=True)
    # Drift seen by the periodic check (characters.drift): when Convai's copy was first seen
    # to differ from our last snapshot, and the (redacted) state seen there. The record and
    # its revisions are left alone until someone reviews it and syncs or keeps ours; a sync,
    # an edit or a restore clears both (`clear_drift`).
    remote_changed_at = models.DateTimeField(null=True, blank=True)
    remote_state = models.JSONField(null=True, blank=True)
    # The last time the check read the whole character (`get`, backstory included): the
    # backstory-only sample reads the least recently read first.
    remote_checked_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Lineage of a "Copy to another key": the character (and its revision number) this one
    # was copied from. The original lists its copies through `copies`.
    copied_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="copies"
    )
    copied_from_revision = models.PositiveIntegerField(null=True, blank=True)
    # The save in flight (compare-and-set on `version`): claimed by one conditional UPDATE
    # before the Convai call, released when the save finishes or fails. A claim older than
    # the client's timeout plus a margin was interrupted (the server died) and may be taken.
    saving_token = models.CharField(max_length=32, blank=True, default="")
    saving_since = models.DateTimeField(null=True, blank=True)
    saving_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "convai_id"],
                condition=Q(deleted_at__isnull=True),
                name="one_live_character_per_team_and_convai_id",
            )
        ]
        indexes = [
            # Partial on live rows and ending with the ID, so a page in any list order is a
            # walk of the index that stops after 50 rows (a search included), not a sort.
            models.Index(
                fields=["team", "sort_name", "id"],
                condition=Q(deleted_at__isnull=True),
                name="character_live_sort_name",
            ),
            models.Index(
                fields=["team", "-updated_at", "-id"],
                condition=Q(deleted_at__isnull=True),
                name="character_live_recent",
            ),
            models.Index(
                fields=["team", "remote_changed_at"],
                condition=Q(deleted_at__isnull=True, remote_changed_at__isnull=False),
                name="character_live_changed",
            ),
            models.Index(
                fields=["team", "voice_type"],
                condition=Q(deleted_at__isnull=True),
                name="character_live_voice",
            ),
            # The list's language filter reads the distinct language lists in use: a walk
            # of this index, not of the table's rows (backstories and snapshots included).
            models.Index(
                fields=["team", "language_codes"],
                condition=Q(deleted_at__isnull=True),
                name="character_live_languages",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.convai_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.sort_name = sort_name_for(self.name)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "name" in update_fields:
            kwargs["update_fields"] = {*update_fields, "sort_name"}
        super().save(*args, **kwargs)
        if update_fields is None or FACET_FIELDS.intersection(update_fields):
            # In the same transaction: the team's filter options are computed again by the
            # next list (every service saves through here; no queryset update() in
            # characters/ writes a FACET_FIELDS column, which tests/characters/test_facets.py
            # checks).
            CharacterFacets.objects.filter(team_id=self.team_id).delete()

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def changed_in_convai(self) -> bool:
        return self.remote_changed_at is not None

    def clear_drift(self) -> None:
        """Forget the drift mark (before a save that makes Convai's state and ours one)."""
        self.remote_changed_at = None
        self.remote_state = None

    def editable(self) -> dict[str, Any]:
        """The edited fields as plain data (what a form starts from, what a revision diffs)."""
        return {
            "name": self.name,
            "voice_type": self.voice_type,
            "backstory": self.backstory,
            "actions": list(self.actions or []),
            "language_codes": list(self.language_codes or []),
        }


# The list's search (`name__search_contains`, `backstory__search_contains`): only on the two
# fields migration 0003 indexes, not on every CharField of every app.
for _searchable in ("name", "backstory"):
    _field = Character._meta.get_field(_searchable)
    assert isinstance(_field, models.Field)
    _field.register_lookup(SearchContains)


class Revision(models.Model):
    """One saved state of a character: after every create, update, import, sync, restore or
    delete. `fields` are the edited fields, `snapshot` the remote payload at that moment."""

    class Reason(models.TextChoices):
        CREATED = "created", "Created"
        IMPORTED = "imported", "Imported"
        UPDATED = "updated", "Edited"
        SYNCED = "synced", "Synced from Convai"
        RESTORED = "restored", "Restored"
        CLONED = "cloned", "Cloned"
        COPIED = "copied", "Copied"
        REBOUND = "rebound", "Rebound to another key"
        DELETED = "deleted", "Deleted"

    character = models.ForeignKey(Character, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    fields = models.JSONField(default=dict)
    snapshot = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["character", "number"], name="one_revision_number_per_character"
            )
        ]

    def __str__(self) -> str:
        return f"{self.character_id} r{self.number} {self.reason}"


class PendingOperation(models.Model):
    """A create, clone or delete recorded (and committed) before Convai is called, so a
    request that dies mid-call leaves a trace: finished after the call, or resolved later by
    `reconcile_pending_operations` (adopt what Convai made, or mark it failed).

    `token` comes from the form (a hidden field made when the form was rendered): the same
    form submitted twice is the same operation, and Convai is never asked twice. `fields`
    holds the form's values (never a key or any other secret)."""

    class Kind(models.TextChoices):
        CREATE = "create", "Create"
        CLONE = "clone", "Clone"
        DELETE = "delete", "Delete"

    class State(models.TextChoices):
        PENDING = "pending", "In progress or outcome unknown"
        DONE = "done", "Done"
        FAILED = "failed", "Did not happen"

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    token = models.CharField(max_length=64)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Clone: the source; delete: the character deleted.
    character = models.ForeignKey(
        Character, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Create and clone: the character made (once known).
    result = models.ForeignKey(
        Character, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=100)
    fields = models.JSONField(default=dict, blank=True)
    message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "token"], name="one_operation_per_token")
        ]
        indexes = [
            models.Index(
                fields=["team", "created_at"],
                condition=Q(state="pending"),
                name="pending_operation_by_team",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.state})"


class CharacterFacets(models.Model):
    """The voices, languages and keys a team's live characters use: the list's filter options,
    kept beside the characters so that neither a cold cache (a deploy, an eviction) nor a
    second server recomputes them from every row (three scans of 10,000 rows were the largest
    cost of a list with a cold cache).

    Maintained by `Character.save()`, which drops the team's row when a field the options
    come from may have changed; the next list computes it again (selectors.facet_values). A
    row older than selectors.FACETS_MAX_AGE is computed again anyway: a write that bypassed
    save() (none does today) or a list that read just before a write committed shows stale
    options at most that long, which filters nothing wrongly (a value in the URL still works).
    Keys are kept as (ID, label, last four, owner's username): none of these changes once a
    key is stored."""

    team = models.OneToOneField(
        "teams.Team", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    voices = models.JSONField(default=list)
    languages = models.JSONField(default=list)
    keys = models.JSONField(default=list)
    computed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"facets of team {self.team_id}"
