"""The password change form (allauth's, set as ACCOUNT_FORMS["change_password"]), with the
wrong-current-password limit."""

from __future__ import annotations

from allauth.account.forms import ChangePasswordForm
from django import forms

from .services import password_change_locked, password_change_window

PASSWORD_INCORRECT = "password_incorrect"
PASSWORD_CHANGE_LOCKED = "password_change_locked"


class PasswordChangeForm(ChangePasswordForm):
    error_messages = {
        PASSWORD_INCORRECT: ("Your old password was entered incorrectly. Please enter it again."),
        PASSWORD_CHANGE_LOCKED: (
            "Too many wrong current passwords: changing your password is paused for "
            "%(minutes)s minutes. Try again later."
        ),
    }

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
