"""People: the User model. Teams live in `teams`, personal API keys in `keys`."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person. Accounts come from invitations or `createsuperuser`; there is no sign-up."""

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


class PasswordChangeFailure(models.Model):
    """One wrong current password given at "Change password": the limit's counter
    (accounts.services.password_change_locked). Rows older than the window are pruned as new
    ones come, and a successful change clears them. The audit log records the same attempt
    for people; it is not the limit's state."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", editable=False
    )
    created_at = models.DateTimeField(editable=False)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="pwchange_failure_user_time")]

    def __str__(self) -> str:
        return f"wrong current password of user {self.user_id} at {self.created_at:%Y-%m-%d %H:%M}"
