"""The password change form, with the wrong-current-password limit."""

from __future__ import annotations

from django import forms
from django.contrib.auth import forms as auth_forms

from .services import password_change_locked, password_change_window


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    error_messages = {
        **auth_forms.PasswordChangeForm.error_messages,
        "password_change_locked": (
            "Too many wrong current passwords: changing your password is paused for "
            "%(minutes)s minutes. Try again later."
        ),
    }

    def clean_old_password(self) -> str:
        # Refuse before checking the password, so a locked form is no oracle.
        if password_change_locked(self.user):
            raise forms.ValidationError(
                self.error_messages["password_change_locked"],
                code="password_change_locked",
                params={"minutes": round(password_change_window().total_seconds() / 60)},
            )
        return str(super().clean_old_password())
