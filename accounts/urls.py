"""Account pages. allauth's own URLs (password reset, re-authentication, two-factor) are
included after these in convai_admin/urls.py; the paths here that share allauth's
(login, logout, password change, sessions) come first, so these views answer them."""

from allauth.account import views as allauth_views
from django.contrib.auth.decorators import login_required
from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "accounts"

urlpatterns = [
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", allauth_views.logout, name="logout"),
    path("accounts/signed-out/", views.LoggedOutView.as_view(), name="logged-out"),
    # The address before allauth (bookmarks, old links) still leads to the page.
    path("accounts/password/", RedirectView.as_view(pattern_name="accounts:password-change")),
    path(
        "accounts/password/change/",
        views.PasswordChangeView.as_view(),
        name="password-change",
    ),
    path(
        "accounts/password/done/",
        login_required(views.PasswordChangeDoneView.as_view()),
        name="password-change-done",
    ),
    path("accounts/sessions/", views.SessionsView.as_view(), name="sessions"),
    path("accounts/password/reset/", views.PasswordResetView.as_view(), name="password-reset"),
]
