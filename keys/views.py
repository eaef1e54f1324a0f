"""Pages for a member's own Convai API keys: list + add, verify, revoke (with confirmation).

Keys are personal, not team data: every lookup is scoped to request.user, so another
member's key ID answers 404. Views that receive a key hide it from error reports."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import reauthentication_required
from convai_admin.htmx import act_then_redirect, confirm_or_act
from convai_admin.http import AuthenticatedRequest

from . import hooks, services
from .forms import ApiKeyForm
from .models import ApiKey
from .selectors import account_groups, api_keys_for

PAGE = "keys/api_keys.html"
REVOKE_PAGE = "keys/api_key_revoke.html"


def _render_page(
    request: AuthenticatedRequest, form: ApiKeyForm, *, offer_unverified: bool = False
) -> HttpResponse:
    keys = list(api_keys_for(request.user))
    context: dict[str, Any] = {
        "form": form,
        "api_keys": keys,
        "account_groups": account_groups(keys),
        "offer_unverified": offer_unverified,
        "now": timezone.now(),
        # What the apps built on keys registered (keys.hooks), e.g. builds that stopped.
        "key_notices": hooks.page_notices(request.user),
    }
    return render(request, PAGE, context)


def _account_phrase(api_key: ApiKey) -> str:
    """ "the Convai account “studio” (lead@studio.example.com), Professional plan" """
    account = f"the Convai account “{api_key.account_label}”"
    if api_key.account_name and api_key.account_email:
        account += f" ({api_key.account_email})"
    if api_key.plan_name:
        account += f", {api_key.plan_name} plan"
    return account


def _report_check(request: AuthenticatedRequest, check: services.KeyCheck, done: str) -> None:
    """The flash message after Convai accepted a stored key: whose account it is, or that
    the account could not be read."""
    api_key = check.api_key
    named = f"“{api_key.label}” (…{api_key.last_four})"
    if check.usage_read and api_key.account_known:
        messages.success(request, f"{done} {named}: it belongs to {_account_phrase(api_key)}.")
    elif check.usage_read:
        messages.success(
            request, f"{done} {named}. Convai did not say which account it belongs to."
        )
    else:
        messages.warning(
            request,
            f"{done} {named}, but its account and usage answer could not be read"
            + (
                "; the figures shown are from the last check."
                if api_key.usage_checked_at
                else ", so its account shows as unknown."
            )
            + " Try “Refresh usage” later.",
        )


@login_required
@sensitive_post_parameters("key")
@sensitive_variables()  # every frame below (form cleaning, the Convai call) holds the key
@require_http_methods(["GET", "POST"])
# Adding a key asks for a recent sign-in; the refused POST (it holds the key) is not kept.
@reauthentication_required(keep_post=False)
def api_keys(request: AuthenticatedRequest) -> HttpResponse:
    """List the member's keys; POST adds one (verified with Convai unless they chose not to)."""
    user = request.user
    if request.method != "POST":
        return _render_page(request, ApiKeyForm(user=user))
    form = ApiKeyForm(request.POST, user=user)
    if not form.is_valid():
        return _render_page(request, form)
    skip = request.POST.get("save_unverified") == "1"
    try:
        api_key = services.add_api_key(
            actor=user,
            label=form.cleaned_data["label"],
            raw_key=form.cleaned_data["key"],
            skip_verification=skip,
        )
    except (services.ApiKeyRejected, services.DuplicateApiKey) as error:
        form.add_error("key", error.message)
        return _render_page(request, form)
    except services.VerificationUnavailable as error:
        form.add_error(None, error.message)
        return _render_page(request, form, offer_unverified=True)
    except services.ApiKeyError as error:
        form.add_error(None, error.message)
        return _render_page(request, form)
    if skip:
        messages.warning(
            request,
            f"Saved “{api_key.label}” (…{api_key.last_four}) without verifying it. Use "
            "“Verify” once Convai is reachable.",
        )
    elif api_key.account_known:
        messages.success(
            request,
            f"Convai accepted “{api_key.label}” (…{api_key.last_four}): it belongs to "
            f"{_account_phrase(api_key)}. It is stored encrypted and ready to use.",
        )
    else:
        messages.success(
            request,
            f"Convai accepted “{api_key.label}” (…{api_key.last_four}). It is stored encrypted "
            "and ready to use; its Convai account could not be read, so it shows as unknown.",
        )
    # The form posts to #add-key; land on the message instead of below it.
    return redirect(reverse("keys:list") + "#messages")


@login_required
@require_POST
def api_key_verify(request: AuthenticatedRequest, key_id: UUID) -> HttpResponse:
    """Check a stored key against Convai again (e.g. one saved while Convai was down)."""

    def act() -> None:
        check = services.verify_api_key(actor=request.user, api_key_id=key_id)
        _report_check(request, check, "Convai accepted")

    return act_then_redirect(request, act=act, done_url=reverse("keys:list") + "#messages")


@login_required
@require_POST
def api_key_refresh_usage(request: AuthenticatedRequest, key_id: UUID) -> HttpResponse:
    """Read the key's account, plan and quota from Convai again ("Refresh usage")."""

    def act() -> None:
        check = services.refresh_api_key_usage(actor=request.user, api_key_id=key_id)
        _report_check(request, check, "Usage refreshed with")

    return act_then_redirect(request, act=act, done_url=reverse("keys:list") + "#messages")


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request: AuthenticatedRequest, key_id: UUID) -> HttpResponse:
    """GET: the confirmation (a dialog fragment for htmx, a page otherwise). POST: revoke."""
    # Revoked keys too: a second click on "Revoke" is a harmless no-op, not a 404. But there is
    # nothing left to confirm: asking to revoke a revoked key again answers 404.
    api_key = get_object_or_404(ApiKey, owner=request.user, pk=key_id)
    if request.method != "POST" and not api_key.is_active:
        raise Http404("No such API key.")

    def act() -> str:
        services.revoke_api_key(actor=request.user, api_key_id=api_key.pk)
        return (
            f"Revoked “{api_key.label}” (…{api_key.last_four}). Its encrypted copy is erased; "
            "also delete the key in Convai if it may have leaked."
        )

    return confirm_or_act(
        request,
        template=REVOKE_PAGE,
        context={
            "api_key": api_key,
            # What the apps built on keys registered (keys.hooks): keys imports none of them.
            "characters_read_only": hooks.read_only_after_revoking(api_key),
            "also_stopping": hooks.warnings_after_revoking(api_key),
        },
        act=act,
        done_url=reverse("keys:list") + "#messages",
    )
