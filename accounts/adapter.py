"""How django-allauth fits this product: closed sign-up, our client IP, our pages."""

from __future__ import annotations

import time
from typing import Any

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.flows.login import get_authentication_records
from allauth.core import context
from allauth.mfa.adapter import DefaultMFAAdapter
from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from convai_admin.net import client_ip

from . import limits, mfa_secrets
from .models import User
from .services import record_password_reset_requested, record_sign_in_lockout


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        # The product's wording, as before allauth.
        "username_password_mismatch": (
            "Please enter a correct username and password. Note that both fields may be "
            "case-sensitive."
        ),
        # The sign-in view answers these with the lock page (accounts.views.LoginView).
        limits.ACCOUNT_LOCKED: "Too many failed sign-ins for this account; try again later.",
        limits.IP_LIMITED: "Too many failed sign-ins from your network; try again later.",
    }

    # --- sign-in limits (accounts/limits.py) ---------------------------------------------

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        """The per-account key of allauth's `login_failed` limit: the username alone (see
        accounts.limits.sign_in_key). allauth also clears it after a password reset."""
        return limits.sign_in_key(str(credentials.get("username") or ""))

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        """allauth refuses a locked account or address before any password is checked; this
        says which lock it is, and audits the refused try as Django does a backend's refusal."""
        username = str(credentials.get("username") or "")
        try:
            super().pre_authenticate(request, **credentials)
        except forms.ValidationError:
            user_login_failed.send(
                sender=__name__, credentials={"username": username}, request=request
            )
            reason = limits.limit_reached(request, username) or limits.ACCOUNT_LOCKED
            raise self.validation_error(reason) from None

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        """A wrong password that reaches a limit locks at once: audited, and the person sees
        the lock page now rather than at their next try."""
        username = str(credentials.get("username") or "")
        reason = limits.limit_reached(request, username)
        if reason is None:
            return
        record_sign_in_lockout(
            username=username,
            ip_address=self.get_client_ip(request),
            scope="ip" if reason == limits.IP_LIMITED else "account",
        )
        raise self.validation_error(reason)

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """Accounts come from team invitations (teams) or `createsuperuser`, never from a
        public form: allauth's sign-up page answers "sign-up is closed"."""
        return False

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        """A sign-in within ACCOUNT_REAUTHENTICATION_TIMEOUT counts as confirming it is you
        (as GitHub's sudo mode does): someone who just typed their password and code is not
        asked again at once."""
        request = context.request
        records = get_authentication_records(request, request.user)
        last = records[-1].get("at") if records else None
        if isinstance(last, int | float) and time.time() - last < (
            account_settings.REAUTHENTICATION_TIMEOUT
        ):
            return False
        return super().is_reauthentication_required(app=app, **kwargs)

    def get_client_ip(self, request: HttpRequest) -> str:
        """The same client IP as the audit log (trusted proxies only): what allauth's per-IP
        limits count."""
        return client_ip(request) or "0.0.0.0"  # noqa: S104  (never a bind address)

    def send_password_reset_mail(
        self, user: AbstractBaseUser, email: str, context: dict[str, Any]
    ) -> None:
        super().send_password_reset_mail(user, email, context)
        if isinstance(user, User):
            record_password_reset_requested(user=user)

    def get_password_change_redirect_url(self, request: HttpRequest) -> str:
        return reverse("accounts:password-change-done")

    def get_logout_redirect_url(self, request: HttpRequest) -> str:
        return reverse("accounts:logged-out")


class MFAAdapter(DefaultMFAAdapter):
    def get_totp_label(self, user: AbstractBaseUser) -> str:
        """What the authenticator app shows under "Convai Admin": the username, never an email
        address someone else might read on the phone's lock screen."""
        return user.get_username()

    @sensitive_variables()
    def encrypt(self, text: str) -> str:
        """TOTP and recovery-code seeds are sealed with the API keys' keyring before allauth
        stores them (accounts/mfa_secrets.py)."""
        return mfa_secrets.seal(text)

    @sensitive_variables()
    def decrypt(self, encrypted_text: str) -> str:
        return mfa_secrets.open_sealed(encrypted_text)
