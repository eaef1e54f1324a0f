from __future__ import annotations

import pytest

from backups import archive


@pytest.fixture(autouse=True)
def _cheaper_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production cost (2**17) is for real archives; the manifest carries the parameters,
    so a restore reads whatever its archive was made with."""
    monkeypatch.setattr(archive, "SCRYPT_N", 2**14)
