"""People: the User model. Teams live in `teams`, personal API keys in `keys`."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A person. Accounts come from invitations or `createsuperuser`; there is no sign-up."""

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username
