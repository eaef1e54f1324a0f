"""Raw form posts for the unreadable-text tests (tests/test_readable_text.py and
tests/characters/test_unreadable_text.py): bytes no decoder accepts, sent as multipart."""

from __future__ import annotations

UNREADABLE = "could not be read"


def multipart(**fields: bytes) -> bytes:
    parts = [
        b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (name.encode(), value)
        for name, value in fields.items()
    ]
    return b"".join(parts) + b"--B--\r\n"


MULTIPART = "multipart/form-data; boundary=B"
