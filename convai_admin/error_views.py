"""The product's error pages (handler400/403/404/500 in convai_admin.urls).

Django's own error views are wrapped in `requires_csrf_token`, which runs the CSRF check
again and so reads the request's form: when reading it was the error (a form declaring
charset=latin-1, too many fields), the error page raised it again and the person got a bare
500. These views read nothing from the body; `{% csrf_token %}` in the shell still works
(CsrfViewMiddleware has set the cookie's value up for every request)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template.loader import get_template


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(
        request,
        "400.html",
        {
            "title": "Your browser sent a request we could not read",
            "reason": "Nothing was saved. Reload the page and try again; if it keeps "
            "happening, tell whoever runs Convai Admin for your team.",
        },
        status=400,
    )


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "403.html", {"exception": str(exception)}, status=403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "404.html", {"request_path": request.path}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """No request context: whatever failed (the database, a context processor) must not fail
    the error page too."""
    return HttpResponseServerError(get_template("500.html").render({}))
