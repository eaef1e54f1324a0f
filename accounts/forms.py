"""The password change form (allauth's, set as ACCOUNT_FORMS["change_password"]), with the
wrong-current-password limit."""

from __future__ import annotations

from typing import Any

from allauth.account import forms as allauth_forms
from allauth.account.forms import ChangePasswordForm
from allauth.mfa.webauthn.forms import AddWebAuthnForm
from django import forms

from .services import password_change_locked, password_change_window

PASSWORD_INCORRECT = "password_incorrect"
PASSWORD_CHANGE_LOCKED = "password_change_locked"


class LoginForm(allauth_forms.LoginForm):
    """allauth's sign-in form (ACCOUNT_FORMS["login"]); the username field has focus on
    arrival, as the page's only task."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["login"].widget.attrs["autofocus"] = True
        self.fields["login"].widget.attrs.pop("placeholder", None)
        self.fields["password"].widget.attrs.pop("placeholder", None)
        # "Forgot your password?" is a link below the form, after the button in Tab order.
        self.fields["password"].help_text = ""


class PasswordChangeForm(ChangePasswordForm):
    error_messages = {
        PASSWORD_INCORRECT: ("Your old password was entered incorrectly. Please enter it again."),
        PASSWORD_CHANGE_LOCKED: (
            "Too many wrong current passwords: changing your password is paused for "
            "%(minutes)s minutes. Try again later."
        ),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The product's wording (as before allauth), sentence case like every other form.
        self.fields["oldpassword"].label = "Old password"
        self.fields["password1"].label = "New password"
        self.fields["password2"].label = "New password confirmation"

    def clean_oldpassword(self) -> str:
        assert self.user is not None  # allauth's view passes the signed-in user
        # Refuse before checking the password, so a locked form is no oracle.
        if password_change_locked(self.user):
            raise forms.ValidationError(
                self.error_messages[PASSWORD_CHANGE_LOCKED],
                code=PASSWORD_CHANGE_LOCKED,
                params={"minutes": round(password_change_window().total_seconds() / 60)},
            )
        old_password = str(self.cleaned_data.get("oldpassword", ""))
        if not self.user.check_password(old_password):
            raise forms.ValidationError(
                self.error_messages[PASSWORD_INCORRECT], code=PASSWORD_INCORRECT
            )
        return old_password


class AddPasskeyForm(AddWebAuthnForm):
    """allauth's form to add a passkey or security key (MFA_FORMS["add_webauthn"]), worded for
    this product."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].label = "Name"
        self.fields["name"].help_text = "So you can tell your keys apart, e.g. “Work laptop”."
        if "passwordless" in self.fields:
            self.fields["passwordless"].label = "Also sign in with it, without a password"
            self.fields[
                "passwordless"
            ].help_text = "Your device then asks for its PIN, fingerprint or face each time."
