"""Malformed and oversized requests: refused with the product's 400/413 page, before anything
reads the body (CsrfViewMiddleware reads a POST's form to find its token).

Client tests show the pages; raw-socket tests against the live server show what a real HTTP
client gets (a bare 500, or no answer at all, before the guard)."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from teams.models import Membership, Role

# Any well-formed CSRF secret: the cookie and the form field must match, nothing else.
CSRF = "a" * 32
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def editor(make_member: Any) -> Membership:
    return make_member(Role.EDITOR)


def bundle_url(membership: Membership) -> str:
    return reverse("bundles:import", args=[membership.team.slug])


def csrf_client() -> Client:
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.cookies["csrftoken"] = CSRF
    return client


def is_product_page(html: str, code: int) -> bool:
    return f"Error {code}" in html and "app.css" in html


# --- Content-Length -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "12, 12", "0x10"])
def test_a_malformed_content_length_is_a_400_page(
    client: Client, editor: Membership, length: str
) -> None:
    client.force_login(editor.user)
    client.raise_request_exception = False
    response = client.post(bundle_url(editor), b"x=1", content_type=FORM, CONTENT_LENGTH=length)
    assert response.status_code == 400
    html = response.content.decode()
    assert is_product_page(html, 400)
    assert "Content-Length" in html


@pytest.mark.django_db
def test_an_oversized_bundle_is_refused_on_its_announced_size_before_it_is_read(
    client: Client, editor: Membership
) -> None:
    """The test client's payload raises if more is read than it holds: a 413 here proves the
    announced 50 MB were never read (not by CSRF, not by the view)."""
    client.force_login(editor.user)
    client.raise_request_exception = False
    response = client.post(
        bundle_url(editor), b"x=1", content_type=FORM, CONTENT_LENGTH=str(50 * 1024 * 1024)
    )
    assert response.status_code == 413
    html = response.content.decode()
    assert is_product_page(html, 413)
    assert "50.0 MB" in html and "20.0 MB" in html


@pytest.mark.django_db
def test_the_bundle_limit_is_the_bundle_setting(
    client: Client, editor: Membership, settings: Any
) -> None:
    settings.CONVAI_BUNDLE_MAX_BYTES = 1024 * 1024
    client.force_login(editor.user)
    client.raise_request_exception = False
    refused = client.post(
        bundle_url(editor), b"x=1", content_type=FORM, CONTENT_LENGTH=str(2 * 1024 * 1024)
    )
    assert refused.status_code == 413
    assert "1.0 MB" in refused.content.decode()


@pytest.mark.django_db
def test_a_bundle_larger_than_other_forms_may_be_still_reaches_the_bundle_page(
    client: Client, editor: Membership, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client.force_login(editor.user)
    bundle = SimpleUploadedFile("b.json", b" " * 5000, "application/json")
    response = client.post(bundle_url(editor), {"key": "none", "bundle": bundle})
    assert response.status_code == 200  # the upload page, with its own form errors


@pytest.mark.django_db
def test_other_pages_take_at_most_djangos_data_upload_limit(
    client: Client, editor: Membership, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client.force_login(editor.user)
    response = client.post(reverse("keys:list"), {"label": "x" * 5000, "key": "k" * 20})
    assert response.status_code == 413
    assert is_product_page(response.content.decode(), 413)


# --- Character sets -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "utf-16", "utf8", "utf-8, latin-1"])
def test_a_form_in_another_charset_than_utf8_is_a_400_page(charset: str) -> None:
    client = csrf_client()
    response = client.post(
        reverse("accounts:login"),
        f"login=sam&password=pw&csrfmiddlewaretoken={CSRF}".encode(),
        content_type=f"{FORM}; charset={charset}",
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert is_product_page(html, 400)
    assert "UTF-8" in html


@pytest.mark.django_db
def test_a_multipart_form_in_latin1_is_refused_rather_than_stored_as_mojibake(
    client: Client, editor: Membership
) -> None:
    client.force_login(editor.user)
    body = (
        b'--B\r\nContent-Disposition: form-data; name="label"\r\n\r\nCaf\xc3\xa9\r\n'
        b'--B\r\nContent-Disposition: form-data; name="key"\r\n\r\nabcdefgh1234\r\n--B--\r\n'
    )
    response = client.post(
        reverse("keys:list"), body, content_type="multipart/form-data; boundary=B; charset=latin-1"
    )
    assert response.status_code == 400
    assert is_product_page(response.content.decode(), 400)


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "Utf-8"])
def test_utf8_in_any_case_is_accepted(charset: str) -> None:
    client = csrf_client()
    response = client.post(
        reverse("accounts:login"),
        f"login=sam&password=pw&csrfmiddlewaretoken={CSRF}".encode(),
        content_type=f"{FORM}; charset={charset}",
    )
    assert response.status_code == 200  # the sign-in page, saying the password is wrong


@pytest.mark.django_db
def test_a_latin1_post_to_an_unknown_address_is_the_404_page() -> None:
    """Django's own error views run the CSRF check again (`requires_csrf_token`), which reads
    the form and raised the same error inside the error page: a bare 500."""
    client = csrf_client()
    response = client.post("/no-such-page/", b"a=1", content_type=f"{FORM}; charset=latin-1")
    assert response.status_code == 404
    assert is_product_page(response.content.decode(), 404)


@pytest.mark.django_db
def test_unreadable_form_data_that_reaches_a_view_is_the_400_page() -> None:
    """Too many fields (Django's own limit) raises inside the CSRF check: the 400 page, not
    a 500 from the error page reading the form again."""
    client = csrf_client()
    fields = "&".join(f"f{number}=1" for number in range(1500))
    response = client.post(reverse("accounts:login"), fields.encode(), content_type=FORM)
    assert response.status_code == 400
    assert is_product_page(response.content.decode(), 400)


# --- Raw sockets against the live server ----------------------------------------------------------


def exchange(live_server: Any, head: str, body: bytes = b"", *, timeout: float = 5.0) -> bytes:
    """Send a request as bytes, read until the server closes or the headers and some body
    arrived. A socket timeout bounds every wait (raises if the server does not answer)."""
    address = urlsplit(live_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body)
        received = b""
        while b"</html>" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def request_head(path: str, *headers: str) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", *headers]
    return "\n".join(lines) + "\n"


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.django_db(transaction=True)
def test_live_a_malformed_content_length_is_a_400_page(live_server: Any) -> None:
    answer = exchange(
        live_server,
        request_head(
            "/t/any-team/characters/bundles/import/",
            f"Content-Type: {FORM}",
            "Content-Length: abc",
            f"Cookie: csrftoken={CSRF}",
            f"X-CSRFToken: {CSRF}",
        ),
        b"x=1",
    )
    assert status_of(answer) == 400
    assert b"Error 400" in answer


@pytest.mark.django_db(transaction=True)
def test_live_a_latin1_form_is_a_400_page_not_a_bare_500(live_server: Any) -> None:
    body = f"login=sam&password=pw&csrfmiddlewaretoken={CSRF}".encode()
    answer = exchange(
        live_server,
        request_head(
            reverse("accounts:login"),
            f"Content-Type: {FORM}; charset=latin-1",
            f"Content-Length: {len(body)}",
            f"Cookie: csrftoken={CSRF}",
        ),
        body,
    )
    assert status_of(answer) == 400
    assert b"Error 400" in answer and b"app.css" in answer


@pytest.mark.django_db(transaction=True)
def test_live_200_mb_announced_and_a_few_bytes_sent_is_answered_at_once(
    live_server: Any,
) -> None:
    """The answer comes while the client still owes almost all of its body: nothing waited
    for it (before, the CSRF check read the body and the client got no answer at all)."""
    answer = exchange(
        live_server,
        request_head(
            "/t/any-team/characters/bundles/import/",
            "Content-Type: multipart/form-data; boundary=B",
            f"Content-Length: {200 * 1024 * 1024}",
            f"Cookie: csrftoken={CSRF}",
            f"X-CSRFToken: {CSRF}",
        ),
        b"--B\r\n",
        timeout=3.0,
    )
    assert status_of(answer) == 413
    assert b"200.0 MB" in answer
