"""Account pages: allauth's views with this product's rules (limits, audit, sessions)."""

from __future__ import annotations

from typing import Any

from allauth.account.internal.flows.password_change import finalize_password_change
from allauth.account.views import LoginView as AllauthLoginView
from allauth.account.views import PasswordChangeView as AllauthPasswordChangeView
from allauth.account.views import PasswordResetView as AllauthPasswordResetView
from allauth.usersessions.views import ListUserSessionsView
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse_lazy
from django.views.generic import TemplateView

from . import limits
from .forms import PASSWORD_CHANGE_LOCKED, PASSWORD_INCORRECT
from .models import User
from .services import (
    NEW_PASSWORD_REFUSED,
    TOO_MANY_ATTEMPTS,
    WRONG_CURRENT_PASSWORD,
    change_password,
    end_other_sessions,
    record_password_change_refused,
)


def _user(request: Any) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required by allauth's views
    return user


class PasswordChangeView(AllauthPasswordChangeView):
    """allauth's page and form (ACCOUNT_FORMS["change_password"] adds the limit); the change
    goes through our audited service, and every other session of the person ends."""

    success_url = reverse_lazy("accounts:password-change-done")

    def form_valid(self, form: Any) -> HttpResponse:
        user = change_password(
            actor=_user(self.request), new_password=form.cleaned_data["password1"]
        )
        # This device stays signed in (ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False)...
        finalize_password_change(self.request, user)
        # ...and the others end now, not only at their next request.
        end_other_sessions(
            actor=user, keep_session_key=self.request.session.session_key, reason="password changed"
        )
        return HttpResponseRedirect(str(self.success_url))

    def form_invalid(self, form: Any) -> HttpResponse:
        codes = {error.code for error in form.errors.as_data().get("oldpassword", [])}
        if PASSWORD_CHANGE_LOCKED in codes:
            reason = TOO_MANY_ATTEMPTS
        elif PASSWORD_INCORRECT in codes:
            reason = WRONG_CURRENT_PASSWORD
        elif codes:
            reason = "current password missing"
        else:
            reason = NEW_PASSWORD_REFUSED
        record_password_change_refused(actor=_user(self.request), reason=reason)
        return super().form_invalid(form)


class LoginView(AllauthLoginView):
    def form_invalid(self, form: Any) -> HttpResponse:
        """A locked account or network gets the lock page (429), which says which lock it is
        and who can help, rather than an error above the form."""
        for reason in (limits.IP_LIMITED, limits.ACCOUNT_LOCKED):
            if form.has_error(NON_FIELD_ERRORS, reason):
                return limits.locked_out_response(
                    self.request, ip_limited=reason == limits.IP_LIMITED
                )
        return super().form_invalid(form)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["email_enabled"] = settings.EMAIL_ENABLED  # "Forgot your password?" needs mail
        return context


class PasswordResetView(AllauthPasswordResetView):
    """allauth's "reset your password" page, only where mail can be sent: without EMAIL_URL
    it says who can help instead of promising a mail that never leaves."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.EMAIL_ENABLED:
            return render(request, "account/password_reset_unavailable.html")
        return super().dispatch(request, *args, **kwargs)


class PasswordChangeDoneView(TemplateView):
    template_name = "account/password_change_done.html"


class LoggedOutView(TemplateView):
    template_name = "account/logged_out.html"


class SessionsView(ListUserSessionsView):
    """allauth's list of the person's sessions; "sign out everywhere else" is audited."""

    success_url = reverse_lazy("accounts:sessions")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["show_last_seen_at"] = True  # kept by accounts.middleware, not by allauth
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        ended = end_other_sessions(
            actor=_user(self.request),
            keep_session_key=self.request.session.session_key,
            reason="signed out everywhere else",
        )
        messages.success(
            self.request,
            f"Signed out of {ended} other session{'s' if ended != 1 else ''}. "
            "This device stays signed in.",
        )
        return HttpResponseRedirect(str(self.success_url))
