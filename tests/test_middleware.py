"""Cross-cutting request plumbing: request IDs, Vary, htmx redirects and domain errors."""

from __future__ import annotations

import pytest
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path, reverse

from convai_admin.errors import DomainError, NotFound
from convai_admin.urls import urlpatterns as project_urlpatterns
from tests.factories import TEST_PASSWORD, UserFactory


@pytest.mark.django_db
def test_every_response_carries_a_request_id_and_varies_on_htmx(client) -> None:
    response = client.get("/accounts/login/")
    assert len(response["X-Request-ID"]) == 32
    assert "HX-Request" in response["Vary"]


@pytest.mark.django_db
def test_a_well_formed_incoming_request_id_is_kept_and_a_bad_one_replaced(client) -> None:
    kept = client.get("/accounts/login/", HTTP_X_REQUEST_ID="edge-1234abcd")
    assert kept["X-Request-ID"] == "edge-1234abcd"
    replaced = client.get("/accounts/login/", HTTP_X_REQUEST_ID="<script>")
    assert replaced["X-Request-ID"] != "<script>"


# --- Test views, mounted beside the project's own URLs ------------------------------------------


class QuotaExceeded(DomainError):
    default_message = "The quota is used up for today."


def refuse(request: HttpRequest) -> HttpResponse:
    raise DomainError("That character is being synced; try again in a minute.")


def refuse_with_default(request: HttpRequest) -> HttpResponse:
    raise QuotaExceeded()


def missing(request: HttpRequest) -> HttpResponse:
    raise NotFound("No such character.")


@login_required
def private(request: HttpRequest) -> HttpResponse:
    return HttpResponse("private")


urlpatterns = [
    *project_urlpatterns,
    path("test/refuse/", refuse, name="test-refuse"),
    path("test/refuse-default/", refuse_with_default, name="test-refuse-default"),
    path("test/missing/", missing, name="test-missing"),
    path("test/private/", private, name="test-private"),
]

HTMX = {"HX-Request": "true"}


# --- HtmxRedirectMiddleware -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["keys:list", "teams:team-list"])
def test_an_expired_session_during_htmx_is_sent_to_sign_in_by_the_server(
    client: Client, url_name: str
) -> None:
    url = reverse(url_name)
    response = client.get(url, headers=HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"{reverse('accounts:login')}?next={url}"
    assert not response.content
    assert "Location" not in response


@pytest.mark.django_db
def test_without_htmx_the_same_page_is_an_ordinary_redirect(client: Client) -> None:
    url = reverse("keys:list")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"
    assert "HX-Redirect" not in response


@pytest.mark.django_db
def test_htmx_answers_that_are_not_redirects_pass_unchanged(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.get(reverse("keys:list"), headers=HTMX)
    assert response.status_code == 200
    assert "HX-Redirect" not in response


@pytest.mark.django_db
def test_an_htmx_redirect_keeps_the_cookies_it_set(client: Client) -> None:
    """Signing in over htmx: the new session's cookie travels on the 204 that replaces the
    redirect, or the browser would arrive signed out."""
    user = UserFactory.create()
    response = client.post(
        reverse("accounts:login"),
        {"login": user.username, "password": TEST_PASSWORD},
        headers=HTMX,
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("teams:home")
    assert response.cookies["sessionid"].value
    assert client.get(reverse("keys:list")).status_code == 200


# --- DomainErrorMiddleware ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.urls("tests.test_middleware")
def test_a_domain_error_becomes_a_message_and_a_redirect_back(client: Client) -> None:
    client.force_login(UserFactory.create())
    back = "http://testserver" + reverse("teams:team-list")
    response = client.post(reverse("test-refuse"), headers={"Referer": back})
    assert response.status_code == 302
    assert response["Location"] == back
    page = client.get(back).content.decode()
    assert "That character is being synced; try again in a minute." in page


@pytest.mark.django_db
@pytest.mark.urls("tests.test_middleware")
def test_a_domain_error_without_a_message_says_its_default(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.post(reverse("test-refuse-default"), follow=True)
    assert "The quota is used up for today." in response.content.decode()


@pytest.mark.django_db
@pytest.mark.urls("tests.test_middleware")
@pytest.mark.parametrize("referer", ["", "https://elsewhere.example/phish"])
def test_back_never_leaves_the_site(client: Client, referer: str) -> None:
    client.force_login(UserFactory.create())
    headers = {"Referer": referer} if referer else {}
    response = client.post(reverse("test-refuse"), headers=headers)
    assert response.status_code == 302
    assert response["Location"] == reverse("teams:home")


@pytest.mark.django_db
@pytest.mark.urls("tests.test_middleware")
def test_a_domain_error_during_htmx_navigates_back(client: Client) -> None:
    client.force_login(UserFactory.create())
    back = "http://testserver" + reverse("keys:list")
    response = client.post(reverse("test-refuse"), headers={**HTMX, "Referer": back})
    assert response.status_code == 204
    assert response["HX-Redirect"] == back


@pytest.mark.django_db
@pytest.mark.urls("tests.test_middleware")
def test_not_found_is_a_404_not_a_message(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.get(reverse("test-missing"))
    assert response.status_code == 404
    assert "No such character." not in response.content.decode()  # DEBUG off: our 404 page
    assert not list(response.wsgi_request._messages)
