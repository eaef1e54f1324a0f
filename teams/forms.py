"""Validation for teams, member roles, invitations and signing up through an invitation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib.auth.forms import BaseUserCreationForm, UsernameField

from accounts.models import User
from convai_admin.validators import ReadableTextMixin, reject_bidi_controls

from .models import Membership, Role, Team


class TwoFactorRequirementForm(forms.Form):
    required = forms.BooleanField(
        required=False,
        label="Members must use two-factor",
        help_text=(
            "Members without an authenticator app or a passkey see only a page asking them to "
            "set one up, until they do."
        ),
    )


class TeamForm(ReadableTextMixin, forms.ModelForm):
    """Name a team (create or rename). The slug is derived once, at creation."""

    class Meta:
        model = Team
        fields = ["name"]
        labels = {"name": "Team name"}
        help_texts = {
            "name": "Your studio or project, e.g. “Northwind Games”. You can rename it later."
        }
        widgets = {"name": forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].validators.append(reject_bidi_controls)

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the team a name.")
        return name


def _role_choices(roles: Iterable[Role]) -> list[tuple[str, str]]:
    return [(role.value, role.label) for role in roles]


class _RoleOfferMixin:
    """The select offers only `offered` roles, but any real role validates: whether this member
    may give it is the service's decision (it records the refusal), not the form's."""

    fields: dict[str, forms.Field]

    def _offer(self, offered: Iterable[Role]) -> None:
        field = self.fields["role"]
        field.choices = _role_choices(Role)  # type: ignore[attr-defined]
        field.widget.choices = _role_choices(offered)


class MemberRoleForm(_RoleOfferMixin, forms.Form):
    """Change one member's role."""

    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, offered: Iterable[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._offer(offered)


class InvitationForm(ReadableTextMixin, _RoleOfferMixin, forms.Form):
    """Invite someone with a role; the email is only recorded, as a reminder of who it was for."""

    role = forms.ChoiceField(label="Role", help_text="What each role may do is listed below.")
    email = forms.EmailField(
        label="Email (optional)",
        required=False,
        help_text="Just a note of who the link is for. No email is sent: you copy the link.",
    )

    def __init__(
        self, *args: Any, offered: Iterable[Role], mail: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if mail:  # settings.EMAIL_ENABLED: the link is mailed there too
            self.fields[
                "email"
            ].help_text = (
                "We email the link to this address. You can also copy it on the next page."
            )
        offered = list(offered)
        self._offer(offered)
        if Role.EDITOR in offered:
            self.fields["role"].initial = Role.EDITOR.value


class InvitationSignupForm(ReadableTextMixin, BaseUserCreationForm):
    """Create an account while accepting an invitation. Passwords go through the project's
    validators; the account itself is created by the service, together with the membership."""

    class Meta:
        model = User
        fields = ("username", "first_name", "last_name", "email")
        field_classes = {"username": UsernameField}
        labels = {"first_name": "First name", "last_name": "Last name", "email": "Email"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[
            "username"
        ].help_text = "Letters, digits and @ . + - _ only. You sign in with it."
        self.fields["email"].required = False
        self.fields["password1"].help_text = (
            "At least 10 characters, not a common password, not only digits and not too "
            "close to your name or username."
        )
        self.fields["password2"].label = "Password again"
        self.fields["username"].widget.attrs.update({"autofocus": True, "autocomplete": "username"})
        for name in ("username", "first_name", "last_name"):
            self.fields[name].validators.insert(0, reject_bidi_controls)

    def clean_username(self) -> str:
        """Usernames are unique regardless of case, so “Sam” cannot impersonate “sam”."""
        username = self.cleaned_data.get("username", "")
        if username and User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(
                "That username is already taken. If it is yours, sign in instead."
            )
        return username


class TeamNameConfirmationForm(forms.Form):
    """A typed confirmation: the team's name, exactly (surrounding spaces aside), so a
    lasting change is never one stray click."""

    confirm = forms.CharField(
        label="Type the team's name to confirm",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, team_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team_name = team_name
        self.fields["confirm"].help_text = f"Type “{team_name}”."

    def clean_confirm(self) -> str:
        typed = str(self.cleaned_data["confirm"]).strip()
        if typed != self.team_name:
            raise forms.ValidationError(
                f"That is not the team's name. Type “{self.team_name}” exactly as shown "
                "(capitals count)."
            )
        return typed


class TransferOwnershipForm(TeamNameConfirmationForm):
    """Choose the new Owner among the other members, then type the team's name."""

    field_order = ["member", "confirm"]
    member = forms.TypedChoiceField(label="New Owner", coerce=int)

    def __init__(self, *args: Any, candidates: Iterable[Membership], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["member"]
        field.choices = [("", "Choose a member…")] + [  # type: ignore[attr-defined]
            (m.pk, f"{m.user.display_name} ({m.user.username}, {m.get_role_display()})")
            for m in candidates
        ]
        field.help_text = "They become an Owner; you become an Admin."
