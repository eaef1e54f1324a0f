"""The audit log's filters (GET): fields that can be shared as a URL, plus the search box."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from audit.models import AuditChain, Outcome
from audit.selectors import (
    MAX_ID,
    TARGET_TYPES,
    Criteria,
    action_groups,
    in_range,
    out_of_range,
    parse_search,
)


class _UserChoiceField(forms.TypedChoiceField):
    """The actor select: a number no user can have is out of range, not an unknown choice."""

    def validate(self, value: Any) -> None:
        if isinstance(value, str) and value.isdigit() and int(value) > MAX_ID:
            raise forms.ValidationError(out_of_range(f"Actor {value}", number=True))
        super().validate(value)


class AuditFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=300,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "actor:alice action:character.delete outcome:failure "
                "created:>=2026-11-01",
                "autocomplete": "off",
                "spellcheck": "false",
            }
        ),
    )
    actor = _UserChoiceField(label="Actor", required=False, coerce=int, empty_value=None)
    action = forms.ChoiceField(label="Action", required=False)
    target_type = forms.ChoiceField(
        label="Target",
        required=False,
        choices=[("", "Any target"), *TARGET_TYPES.items()],
    )
    target = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    # From a member's row: what they did and what was done to them (user ID).
    member = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        widget=forms.HiddenInput,
        error_messages={"max_value": out_of_range("Member", number=True)},
    )
    outcome = forms.ChoiceField(
        label="Outcome", required=False, choices=[("", "Any outcome"), *Outcome.choices]
    )
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, chain: AuditChain | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = chain.actors if chain else {}
        actors = sorted(known.items(), key=lambda kv: kv[1].lower())
        choices: list[tuple[Any, str]] = [("", "Anyone"), *((int(k), v) for k, v in actors)]
        wanted = str(self.data.get("actor", "")) if self.is_bound else ""
        if wanted.isdigit() and int(wanted) <= MAX_ID and wanted not in known:
            choices.append((int(wanted), f"User #{wanted}"))  # a link for someone with no event
        cast(forms.ChoiceField, self.fields["actor"]).choices = choices
        groups: list[Any] = [("", "Any action")]
        groups += action_groups(chain.actions if chain else [])
        cast(forms.ChoiceField, self.fields["action"]).choices = groups
        for name in ("q", "actor", "action", "target_type", "outcome", "since", "until"):
            self.fields[name].widget.attrs.setdefault("id", f"audit-{name}")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("since", "until"):
            if not in_range(data.get(name)):
                label = self.fields[name].label
                self.add_error(name, out_of_range(f"{label} {data[name]}"))
        return data

    def warnings(self) -> list[str]:
        """Only after is_valid() failed: each problem once, in words a person can act on."""
        warnings = []
        for name, messages in self.errors.items():
            label = str(self.fields[name].label or name) if name in self.fields else ""
            for message in messages:
                text = str(message)
                warnings.append(text if not label or text.startswith(label) else f"{label}: {text}")
        return warnings

    def criteria(self) -> Criteria:
        """Only after is_valid(): the fields and the search box, merged."""
        data = self.cleaned_data
        criteria = Criteria(
            actor_ids=[data["actor"]] if data.get("actor") is not None else [],
            member_id=data.get("member"),
            actions=[data["action"]] if data.get("action") else [],
            outcome=data.get("outcome") or "",
            target_type=data.get("target_type") or "",
            target_id=data.get("target") or "",
            since=data.get("since"),
            until=data.get("until"),
        )
        return parse_search(data.get("q") or "", criteria)
