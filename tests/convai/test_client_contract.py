"""The real client against the real sandbox over HTTP: every method, every error class."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from convai.client import ConvaiClient
from convai.errors import (
    ConvaiAuthError,
    ConvaiError,
    ConvaiProtocolError,
    ConvaiRateLimitError,
    ConvaiRequestError,
    ConvaiTimeoutError,
    ConvaiUnavailableError,
)
from convai.types import CharacterDetails, Language, Voice
from sandbox.models import Listing, SandboxCharacter
from sandbox.services import set_fault
from tests.support.sandbox import wait_for_live_server

MakeClient = Callable[..., ConvaiClient]
BACKSTORY = "Raymond Reddington is a criminal mastermind."


@pytest.fixture
def convai(make_client: MakeClient, sandbox_key: str) -> ConvaiClient:
    return make_client(sandbox_key)


# --- every method -----------------------------------------------------------------------------


def test_create_then_get_round_trips_every_field(convai: ConvaiClient) -> None:
    char_id = convai.create_character("Raymond", "MALE", BACKSTORY, actions=["Wave", "Sit"])
    details = convai.get_character(char_id)
    assert isinstance(details, CharacterDetails)
    assert details.character_id == char_id
    assert details.character_name == "Raymond"
    assert details.voice_type == "MALE"
    assert details.backstory == BACKSTORY
    assert details.actions == ["Wave", "Sit"]
    assert details.language_codes == ["en-US"]
    assert details.user_id and details.timestamp
    assert details.raw["memory_settings"] == {"enabled": False}


def test_create_without_actions(convai: ConvaiClient) -> None:
    char_id = convai.create_character("Liz", "FEMALE", "An FBI agent.")
    assert convai.get_character(char_id).actions == []


def test_get_by_name(convai: ConvaiClient) -> None:
    char_id = convai.create_character("Raymond", "MALE", BACKSTORY)
    assert convai.get_character(name="Raymond").character_id == char_id


def test_get_needs_an_id_or_a_name(convai: ConvaiClient) -> None:
    with pytest.raises(ValueError):
        convai.get_character()


def test_update_changes_only_the_given_fields(convai: ConvaiClient) -> None:
    char_id = convai.create_character("Raymond", "MALE", BACKSTORY, actions=["Wave"])
    convai.update_character(char_id, name="Red", language_codes=["fr-FR", "de-DE"])
    details = convai.get_character(char_id)
    assert (details.character_name, details.backstory, details.voice_type) == (
        "Red",
        BACKSTORY,
        "MALE",
    )
    assert details.actions == ["Wave"]
    assert details.language_codes == ["fr-FR", "de-DE"]
    convai.update_character(char_id, backstory="Reformed.", voice_type="US MALE 1", actions=[])
    details = convai.get_character(char_id)
    assert (details.backstory, details.voice_type, details.actions) == (
        "Reformed.",
        "US MALE 1",
        [],
    )


def test_clone_with_and_without_kb(convai: ConvaiClient) -> None:
    char_id = convai.create_character("Raymond", "MALE", BACKSTORY)
    SandboxCharacter.objects.filter(character_id=char_id).update(knowledge_base=["files.pdf"])
    plain = convai.clone_character(char_id)
    with_kb = convai.clone_character(char_id, include_kb=True)
    assert len({char_id, plain, with_kb}) == 3
    assert SandboxCharacter.objects.get(character_id=plain).knowledge_base == []
    assert SandboxCharacter.objects.get(character_id=with_kb).knowledge_base == ["files.pdf"]
    assert convai.get_character(with_kb).backstory == BACKSTORY


def test_delete(convai: ConvaiClient) -> None:
    char_id = convai.create_character("Raymond", "MALE", BACKSTORY)
    convai.delete_character(char_id)
    with pytest.raises(ConvaiRequestError):
        convai.get_character(char_id)


def test_list_gives_own_characters_without_backstory(
    convai: ConvaiClient, make_client: MakeClient, other_key: str
) -> None:
    assert convai.list_characters() == []
    mine = [convai.create_character(name, "MALE", BACKSTORY) for name in ("A", "B")]
    make_client(other_key).create_character("Theirs", "MALE", BACKSTORY)
    listed = convai.list_characters()
    assert [c.character_id for c in listed] == mine
    assert all(c.backstory is None for c in listed)


def test_public_characters_of_others_are_readable(
    convai: ConvaiClient, make_client: MakeClient, other_key: str
) -> None:
    theirs = make_client(other_key).create_character("Public", "MALE", BACKSTORY)
    SandboxCharacter.objects.filter(character_id=theirs).update(listing=Listing.PUBLIC)
    assert convai.get_character(theirs).listing == "public"
    with pytest.raises(ConvaiRequestError):
        convai.delete_character(theirs)


def test_list_voices(convai: ConvaiClient) -> None:
    voices = convai.list_voices()
    assert len(voices) == 384
    assert all(isinstance(voice, Voice) and voice.voice_value for voice in voices)
    ada = next(voice for voice in voices if voice.name == "Ada Female Multilingual Voice")
    assert (ada.section, ada.gender, ada.voice_value) == (
        "Azure Voices",
        "FEMALE",
        "AZURE-MULTILINGUAL-a274d6d359",
    )
    assert "en-US" in ada.lang_codes


def test_list_languages(convai: ConvaiClient) -> None:
    languages = convai.list_languages()
    assert len(languages) == 24
    assert languages[0] == Language(lang_code="en-US", lang_name="English")
    assert {language.lang_code for language in languages} >= {"ar", "cmn-CN", "zh-HK"}


# --- every error class ------------------------------------------------------------------------


def test_invalid_key_is_an_auth_error(make_client: MakeClient, sandbox_key: str) -> None:
    with pytest.raises(ConvaiAuthError) as caught:
        make_client("0" * 32).list_characters()
    assert caught.value.status == 401
    assert caught.value.remote_message == "Invalid API key provided."


@pytest.mark.parametrize("method", ["list_characters", "list_voices", "get_character"])
def test_missing_key_is_an_auth_error(
    make_client: MakeClient, sandbox_key: str, method: str
) -> None:
    client = make_client("")
    with pytest.raises(ConvaiAuthError) as caught:
        if method == "get_character":
            client.get_character("x")
        else:
            getattr(client, method)()
    assert caught.value.status in {400, 401}
    assert caught.value.remote_message == "api_key not found."


def test_invalid_create_is_a_request_error_with_convais_message(convai: ConvaiClient) -> None:
    with pytest.raises(ConvaiRequestError) as caught:
        convai.create_character("", "MALE", BACKSTORY)
    assert caught.value.status == 400
    assert caught.value.remote_message.startswith("Error in creating the character.")
    assert caught.value.remote_message in caught.value.message


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_character("no-such-character"),
        lambda c: c.update_character("no-such-character", name="X"),
        lambda c: c.clone_character("no-such-character"),
        lambda c: c.delete_character("no-such-character"),
        lambda c: c.update_character("no-such-character", language_codes=[]),
    ],
    ids=["get", "update", "clone", "delete", "update-languages"],
)
def test_unknown_character_is_a_request_error(
    convai: ConvaiClient, call: Callable[[ConvaiClient], object]
) -> None:
    with pytest.raises(ConvaiRequestError) as caught:
        call(convai)
    assert caught.value.status == 400
    assert caught.value.remote_message


def test_rate_limit_carries_retry_after(make_client: MakeClient, sandbox_key: str) -> None:
    set_fault(rate_limit=True, retry_after=30)
    with pytest.raises(ConvaiRateLimitError) as caught:
        make_client(sandbox_key).create_character("R", "MALE", BACKSTORY)
    assert caught.value.status == 429
    assert caught.value.retry_after == 30
    assert "30 seconds" in caught.value.message


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.list_characters(),
        lambda c: c.create_character("R", "MALE", BACKSTORY),
        lambda c: c.list_languages(),
    ],
    ids=["list", "create", "languages"],
)
def test_outage_is_unavailable(
    make_client: MakeClient, sandbox_key: str, call: Callable[[ConvaiClient], object]
) -> None:
    set_fault(outage=True)
    with pytest.raises(ConvaiUnavailableError) as caught:
        call(make_client(sandbox_key))
    assert caught.value.status == 503
    assert "<html" not in caught.value.message.lower()
    assert not isinstance(caught.value, ConvaiTimeoutError)


def test_connection_refused_is_unavailable(transactional_db: None) -> None:
    # The test settings point the default base URL at the discard port, where nothing listens.
    client = ConvaiClient("0" * 32, read_retries=0)
    with pytest.raises(ConvaiUnavailableError) as caught:
        client.list_characters()
    assert caught.value.status is None


def test_slow_answer_is_a_timeout(make_client: MakeClient, sandbox_key: str) -> None:
    set_fault(latency_ms=400)
    started = time.monotonic()
    with pytest.raises(ConvaiTimeoutError) as caught:
        make_client(sandbox_key, timeout=(2.0, 0.1)).create_character("R", "MALE", BACKSTORY)
    assert time.monotonic() - started < 0.35
    assert "may still have happened" in caught.value.message
    wait_for_live_server()  # it is still answering: done before the database is flushed


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.create_character("R", "MALE", BACKSTORY),
        lambda c: c.get_character("anything"),
        lambda c: c.list_characters(),
        lambda c: c.list_voices(),
        lambda c: c.clone_character("anything"),
        lambda c: c.delete_character("anything"),
    ],
    ids=["create", "get", "list", "voices", "clone", "delete"],
)
def test_malformed_body_is_a_protocol_error(
    make_client: MakeClient, sandbox_key: str, call: Callable[[ConvaiClient], object]
) -> None:
    set_fault(malformed=True)
    with pytest.raises(ConvaiProtocolError) as caught:
        call(make_client(sandbox_key))
    assert caught.value.status == 200


def test_every_error_is_a_convai_error() -> None:
    for error in (
        ConvaiAuthError,
        ConvaiRequestError,
        ConvaiRateLimitError,
        ConvaiUnavailableError,
        ConvaiTimeoutError,
        ConvaiProtocolError,
    ):
        assert issubclass(error, ConvaiError)
