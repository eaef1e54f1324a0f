"""The audit log's filters (GET): fields that can be shared as a URL, plus the search box."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from .models import AuditChain, Outcome
from .selectors import TARGET_TYPES, Criteria, action_groups, parse_search


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
    actor = forms.TypedChoiceField(label="Actor", required=False, coerce=int, empty_value=None)
    action = forms.ChoiceField(label="Action", required=False)
    target_type = forms.ChoiceField(
        label="Target",
        required=False,
        choices=[("", "Any target"), *TARGET_TYPES.items()],
    )
    target = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    # From a member's row: what they did and what was done to them (user ID).
    member = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
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
        actors = sorted((chain.actors if chain else {}).items(), key=lambda kv: kv[1].lower())
        choices: list[tuple[Any, str]] = [("", "Anyone"), *((int(k), v) for k, v in actors)]
        wanted = str(self.data.get("actor", "")) if self.is_bound else ""
        if wanted.isdigit() and wanted not in (chain.actors if chain else {}):
            choices.append((int(wanted), f"User #{wanted}"))  # a link for someone with no event
        cast(forms.ChoiceField, self.fields["actor"]).choices = choices
        groups: list[Any] = [("", "Any action")]
        groups += action_groups(chain.actions if chain else [])
        cast(forms.ChoiceField, self.fields["action"]).choices = groups
        for name in ("q", "actor", "action", "target_type", "outcome", "since", "until"):
            self.fields[name].widget.attrs.setdefault("id", f"audit-{name}")

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
