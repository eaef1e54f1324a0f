"""Pages for a member's own Convai API keys: list + add, verify, revoke (with confirmation).

Keys are personal, not team data: every lookup is scoped to request.user, so another
member's key ID answers 404. Views that receive a key hide it from error reports."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from convai_admin.htmx import render_page

from . import key_services
from .apikey_forms import ApiKeyForm
from .models import User
from .selectors import api_keys_for

PAGE = "accounts/api_keys.html"
REVOKE_PAGE = "accounts/api_key_revoke.html"


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _render_page(
    request: HttpRequest, form: ApiKeyForm, *, offer_unverified: bool = False
) -> HttpResponse:
    context: dict[str, Any] = {
        "form": form,
        "api_keys": list(api_keys_for(_user(request))),
        "offer_unverified": offer_unverified,
    }
    return render(request, PAGE, context)


@login_required
@sensitive_post_parameters("key")
@sensitive_variables()  # every frame below (form cleaning, the Convai call) holds the key
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    """List the member's keys; POST adds one (verified with Convai unless they chose not to)."""
    user = _user(request)
    if request.method != "POST":
        return _render_page(request, ApiKeyForm(user=user))
    form = ApiKeyForm(request.POST, user=user)
    if not form.is_valid():
        return _render_page(request, form)
    skip = request.POST.get("save_unverified") == "1"
    try:
        api_key = key_services.add_api_key(
            user,
            form.cleaned_data["label"],
            form.cleaned_data["key"],
            skip_verification=skip,
            request=request,
        )
    except key_services.ApiKeyRejected as error:
        form.add_error("key", error.message)
        return _render_page(request, form)
    except key_services.VerificationUnavailable as error:
        form.add_error(None, error.message)
        return _render_page(request, form, offer_unverified=True)
    except key_services.ApiKeyError as error:
        form.add_error(None, error.message)
        return _render_page(request, form)
    if skip:
        messages.warning(
            request,
            f"Saved “{api_key.label}” (…{api_key.last_four}) without verifying it. Use "
            "“Verify” once Convai is reachable.",
        )
    else:
        messages.success(
            request,
            f"Convai accepted “{api_key.label}” (…{api_key.last_four}). It is stored encrypted "
            "and ready to use.",
        )
    # The form posts to #add-key; land on the message instead of below it.
    return redirect(reverse("api_keys") + "#messages")


@login_required
@require_POST
def api_key_verify(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """Check a stored key against Convai again (e.g. one saved while Convai was down)."""
    try:
        api_key = key_services.verify_api_key(_user(request), key_id, request=request)
    except key_services.ApiKeyNotFound:
        raise Http404("No such API key.") from None
    except key_services.ApiKeyError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Convai accepted “{api_key.label}” (…{api_key.last_four}).")
    return redirect("api_keys")


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """GET: the confirmation (a dialog fragment for htmx, a page otherwise). POST: revoke."""
    user = _user(request)
    if request.method == "POST":
        try:
            api_key = key_services.revoke_api_key(user, key_id, request=request)
        except key_services.ApiKeyNotFound:
            raise Http404("No such API key.") from None
        messages.success(
            request,
            f"Revoked “{api_key.label}” (…{api_key.last_four}). Its encrypted copy is erased; "
            "also delete the key in Convai if it may have leaked.",
        )
        return redirect("api_keys")
    api_key = get_object_or_404(api_keys_for(user), pk=key_id)
    return render_page(request, REVOKE_PAGE, {"api_key": api_key}, partial="confirm")
