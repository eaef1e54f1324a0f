"""The character fixtures (live sandbox, verified keys, members) for the job tests."""

from tests.characters.conftest import add_key, create, editor, editor_key, sandbox

__all__ = ["add_key", "create", "editor", "editor_key", "sandbox"]
