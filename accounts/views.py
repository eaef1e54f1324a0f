"""Account pages that Django's auth views do not cover as they are."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse_lazy

from .forms import PasswordChangeForm
from .models import User
from .services import (
    NEW_PASSWORD_REFUSED,
    TOO_MANY_ATTEMPTS,
    WRONG_CURRENT_PASSWORD,
    change_password,
    record_password_change_refused,
)


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = PasswordChangeForm
    success_url = reverse_lazy("accounts:password-change-done")

    def _user(self) -> User:
        user = self.request.user
        assert isinstance(user, User)  # login_required by the parent view
        return user

    def form_valid(self, form: Any) -> HttpResponse:
        user = change_password(actor=self._user(), new_password=form.cleaned_data["new_password1"])
        update_session_auth_hash(self.request, user)  # this device stays signed in
        return HttpResponseRedirect(self.get_success_url())

    def form_invalid(self, form: Any) -> HttpResponse:
        codes = {error.code for error in form.errors.as_data().get("old_password", [])}
        if "password_change_locked" in codes:
            reason = TOO_MANY_ATTEMPTS
        elif "password_incorrect" in codes:
            reason = WRONG_CURRENT_PASSWORD
        elif codes:
            reason = "current password missing"
        else:
            reason = NEW_PASSWORD_REFUSED
        record_password_change_refused(actor=self._user(), reason=reason)
        return super().form_invalid(form)
