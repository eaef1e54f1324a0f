"""The character fixtures (verified keys, members) for the job tests; `sandbox` comes from
tests/support/sandbox.py."""

from tests.characters.conftest import add_key, create, editor, editor_key

__all__ = ["add_key", "create", "editor", "editor_key"]
