"""AES-256-GCM encryption at rest: round trips, the keyring format, and every way a stored
value can fail to decrypt (each must raise, never hand back stored text)."""

from __future__ import annotations

import base64
import os

import pytest
from django.core.management import call_command

from keys import crypto

AAD = b"convai-admin:apikey:1:row-a"
SECRET = "c0nvai-secret-0123456789abcdef"


def b64(raw: bytes, *, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()


@pytest.fixture
def ring() -> crypto.Keyring:
    return crypto.parse_keyring(f"new:{b64(os.urandom(32))},old:{b64(os.urandom(32))}")


def test_round_trip_and_stored_form(ring: crypto.Keyring) -> None:
    stored = crypto.encrypt(SECRET, associated_data=AAD, keyring=ring)
    assert stored.startswith("v1:new:")
    assert SECRET not in stored
    assert crypto.key_id_of(stored) == "new"
    assert crypto.decrypt(stored, associated_data=AAD, keyring=ring) == SECRET


def test_each_encryption_uses_a_fresh_nonce(ring: crypto.Keyring) -> None:
    first = crypto.encrypt(SECRET, associated_data=AAD, keyring=ring)
    second = crypto.encrypt(SECRET, associated_data=AAD, keyring=ring)
    assert first != second


def test_older_keys_in_the_keyring_still_decrypt(ring: crypto.Keyring) -> None:
    old_only = crypto.Keyring(keys={"old": ring.keys["old"]})
    stored = crypto.encrypt(SECRET, associated_data=AAD, keyring=old_only)
    assert crypto.decrypt(stored, associated_data=AAD, keyring=ring) == SECRET


def test_unknown_key_id_raises_naming_the_key_id(ring: crypto.Keyring) -> None:
    other = crypto.parse_keyring(f"gone:{b64(os.urandom(32))}")
    stored = crypto.encrypt(SECRET, associated_data=AAD, keyring=other)
    with pytest.raises(crypto.DecryptionError) as excinfo:
        crypto.decrypt(stored, associated_data=AAD, keyring=ring, what="API key 42")
    message = str(excinfo.value)
    assert "'gone'" in message and "API key 42" in message
    assert stored.split(":")[2] not in message and SECRET not in message


def test_same_key_id_with_different_key_material_raises(ring: crypto.Keyring) -> None:
    impostor = crypto.parse_keyring(f"new:{b64(os.urandom(32))}")
    stored = crypto.encrypt(SECRET, associated_data=AAD, keyring=impostor)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(stored, associated_data=AAD, keyring=ring)


@pytest.mark.parametrize("position", [0, 5, 12, 20, -1])
def test_tampered_ciphertext_raises(ring: crypto.Keyring, position: int) -> None:
    stored = crypto.encrypt(SECRET, associated_data=AAD, keyring=ring)
    prefix, kid, payload = stored.split(":", 2)
    blob = bytearray(base64.b64decode(payload))
    blob[position] ^= 0x01
    tampered = f"{prefix}:{kid}:{b64(bytes(blob))}"
    with pytest.raises(crypto.DecryptionError) as excinfo:
        crypto.decrypt(tampered, associated_data=AAD, keyring=ring)
    assert "altered" in str(excinfo.value)
    assert b64(bytes(blob)) not in str(excinfo.value)


def test_transplanted_ciphertext_raises(ring: crypto.Keyring) -> None:
    """A value copied into another row (or another owner's row) must not decrypt there."""
    stored = crypto.encrypt(SECRET, associated_data=AAD, keyring=ring)
    for other_row in (b"convai-admin:apikey:1:row-b", b"convai-admin:apikey:2:row-a"):
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt(stored, associated_data=other_row, keyring=ring)


@pytest.mark.parametrize(
    "value",
    [
        "",
        SECRET,  # a plaintext that somehow got stored: must not come back as if decrypted
        "v1:new",
        "v1:new:",
        "v1:new:not base64 !!",
        "v1:new:" + b64(b"short"),
        # Fixed bytes: parameters must be the same in every pytest-xdist worker.
        "v2:new:" + b64(bytes(range(40))),
        "v1:bad id:" + b64(bytes(range(40))),
    ],
)
def test_malformed_values_raise_without_quoting_them(ring: crypto.Keyring, value: str) -> None:
    with pytest.raises(crypto.DecryptionError) as excinfo:
        crypto.decrypt(value, associated_data=AAD, keyring=ring)
    assert "malformed" in str(excinfo.value) or "altered" in str(excinfo.value)
    if value:
        assert value not in str(excinfo.value)


def test_keyring_accepts_standard_and_urlsafe_base64_with_or_without_padding() -> None:
    raw = bytes(range(250, 256)) + os.urandom(26)  # high bytes force '+/' vs '-_'
    for encoded in (b64(raw), b64(raw, urlsafe=True), b64(raw).rstrip("=")):
        ring = crypto.parse_keyring(f" a1 : {encoded} , b2:{b64(os.urandom(32))}")
        assert ring.keys["a1"] == raw
        assert ring.active_id == "a1"
        assert ring.key_ids == ["a1", "b2"]


def test_keyring_rejects_a_key_of_the_wrong_length_naming_only_its_id() -> None:
    short = b64(os.urandom(16))
    with pytest.raises(crypto.KeyringError) as excinfo:
        crypto.parse_keyring(f"ok:{b64(os.urandom(32))},weak:{short}")
    message = str(excinfo.value)
    assert "'weak'" in message and "16 bytes" in message
    assert short not in message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("{key}", "entry 1 is not in the form"),
        ("a:{key},,b:{key}", "entry 2 is empty"),
        ("a:{key},a:{key}", "appears twice"),
        ("bad id:{key}", "invalid key ID"),
        ("a:not*base64*at*all", "not valid base64"),
    ],
)
def test_malformed_keyrings_get_a_clear_error(spec: str, expected: str) -> None:
    key = b64(os.urandom(32))
    with pytest.raises(crypto.KeyringError) as excinfo:
        crypto.parse_keyring(spec.format(key=key))
    assert expected in str(excinfo.value)
    assert key not in str(excinfo.value)


def test_keyring_repr_hides_key_material(ring: crypto.Keyring) -> None:
    text = repr(ring)
    assert "new" in text
    for key in ring.keys.values():
        assert b64(key) not in text and repr(key) not in text


def test_keyring_follows_settings_changes(settings) -> None:
    settings.ENCRYPTION_KEYS = f"first:{b64(os.urandom(32))}"
    assert crypto.get_keyring().active_id == "first"
    settings.ENCRYPTION_KEYS = f"second:{b64(os.urandom(32))},first:{b64(os.urandom(32))}"
    assert crypto.get_keyring().active_id == "second"
    settings.ENCRYPTION_KEYS = "broken"
    with pytest.raises(crypto.KeyringError):
        crypto.get_keyring()


def test_generate_encryption_key_prints_a_usable_entry(capsys: pytest.CaptureFixture) -> None:
    call_command("generate_encryption_key", "--id", "k2030")
    entry = capsys.readouterr().out.strip()
    ring = crypto.parse_keyring(entry)
    assert ring.active_id == "k2030"
    assert len(ring.keys["k2030"]) == 32
    call_command("generate_encryption_key")
    assert crypto.parse_keyring(capsys.readouterr().out.strip()).active_id.startswith("k")
