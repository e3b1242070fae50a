"""DLMS ciphered APDUs beyond general-glo-ciphering: general-ciphering (0xDD), authentication
only (security control 0x10), and the service-specific glo-/ded- responses a polling client
receives after a ciphered association. Frames are built from the Green Book's layouts and
ciphered with our own helper (AES-GCM from ``cryptography``)."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from typing import Any

import pytest

from modules.codecs.dlms.apdu import (
    SET_RESPONSE,
    encode_aare,
    encode_action_request,
    encode_data_notification,
    encode_get_response,
    encode_set_response,
)
from modules.codecs.dlms.axdr import (
    DOUBLE_LONG_UNSIGNED,
    OCTET_STRING,
    STRUCTURE,
    Data,
)
from modules.codecs.dlms.decode import DlmsDecoder
from modules.codecs.dlms.security import (
    GENERAL_GLO_CIPHERING,
    GeneralHeader,
    GlobalCiphering,
    cipher,
    encode_general_ciphering,
    encode_general_ciphering_full,
    encode_service_ciphering,
    parse_ciphered,
)
from modules.codecs.errors import DecryptionError, FrameError
from tests.support.processes import GATEWAY

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AUTH = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
OTHER_KEY = bytes.fromhex("0F0E0D0C0B0A09080706050403020100")
SERVER_TITLE = bytes.fromhex("4B464D1020304050")  # "KFM" + serial
CLIENT_TITLE = bytes.fromhex("4D4D4D0000000001")
ENERGY_OBIS = bytes([1, 0, 1, 8, 0, 255])


def _push_list() -> Data:
    """A Data-Notification body: {OBIS A+, 123456 Wh}, as Kaifa AT-style structures carry it."""
    return Data(
        STRUCTURE,
        (Data(OCTET_STRING, ENERGY_OBIS), Data(DOUBLE_LONG_UNSIGNED, 123456)),
    )


def _notification() -> bytes:
    return encode_data_notification(_push_list(), invoke_id=7)


def _decode(
    apdu: bytes, decoder: DlmsDecoder | None = None, **keys: bytes | None
) -> dict[str, Any]:
    decoded = (decoder or DlmsDecoder()).decode(
        apdu, key=keys.get("key"), auth_key=keys.get("auth_key")
    )
    return {"frame": decoded.frame, "records": decoded.records, "meter": decoded.meter}


def _energy(result: dict[str, Any]) -> Decimal:
    found = [r for r in result["records"] if r.obis and r.obis.startswith("1-0:1.8.0")]
    assert found, result["records"]
    assert isinstance(found[0].value, (int, Decimal))
    return Decimal(found[0].value)


# ------------------------------------------------------------ general-ciphering (0xDD)


def _general(sc: int, header: GeneralHeader, *, key: bytes = KEY) -> bytes:
    extra = header.aad(SERVER_TITLE) if sc & 0x0F else b""
    content = cipher(
        _notification(),
        system_title=SERVER_TITLE,
        invocation_counter=0x01020304,
        security_control=sc,
        key=key,
        auth_key=AUTH,
        aad_extra=extra,
    )
    return encode_general_ciphering_full(content, originator=SERVER_TITLE, header=header)


_IDENTIFIED = GeneralHeader(
    transaction_id=bytes.fromhex("0000000000000011"),
    recipient_system_title=CLIENT_TITLE,
    date_time=b"",
    other_information=b"",
    key_info="identified-key",
    key_id=0,
)


@pytest.mark.parametrize("sc", [0x30, 0x31, 0x20, 0x10])
def test_general_ciphering_deciphers_with_the_originator_title(sc: int) -> None:
    result = _decode(_general(sc, _IDENTIFIED), key=KEY, auth_key=AUTH)
    frame = result["frame"]
    assert frame["cipher"] == "general-ciphering"
    assert frame["system_title"] == SERVER_TITLE.hex()
    assert frame["general_ciphering"]["transaction_id"] == "0000000000000011"
    assert frame["general_ciphering"]["recipient_system_title"] == CLIENT_TITLE.hex()
    assert frame["general_ciphering"]["key_id"] == "global-unicast-encryption-key"
    assert frame["frame_counter"] == 0x01020304
    assert frame["tag_verified"] is bool(sc & 0x10)
    assert frame["apdu"] == "data-notification"
    assert _energy(result) == Decimal("123.456")
    assert result["meter"]["manufacturer"] == "Kaifa"  # named from the system title


def test_general_ciphering_without_key_info_and_the_suite_one_aad() -> None:
    header = GeneralHeader(b"\x01", CLIENT_TITLE, b"", b"\x05", None, None)
    apdu = _general(0x31, header)
    assert _energy(_decode(apdu, key=KEY, auth_key=AUTH)) == Decimal("123.456")
    # Suites 1 and 2 authenticate the header fields too: another recipient breaks the tag.
    ciphered, _ = parse_ciphered(apdu)
    assert ciphered.general is not None and ciphered.general.other_information == b"\x05"
    tampered = apdu.replace(CLIENT_TITLE, bytes.fromhex("4D4D4D0000000002"), 1)
    with pytest.raises(DecryptionError) as caught:
        _decode(tampered, key=KEY, auth_key=AUTH)
    assert caught.value.code == "wrong_key"


def test_general_ciphering_with_a_wrong_key_is_a_decryption_error() -> None:
    apdu = _general(0x30, _IDENTIFIED)
    with pytest.raises(DecryptionError) as caught:
        _decode(apdu, key=OTHER_KEY, auth_key=AUTH)
    assert caught.value.code == "wrong_key"
    assert "tag does not match" in str(caught.value)
    # Encryption only has no tag: the wrong key shows as a plaintext that is no APDU.
    with pytest.raises(DecryptionError) as caught:
        _decode(_general(0x20, _IDENTIFIED), key=OTHER_KEY)
    assert caught.value.code == "wrong_key"
    with pytest.raises(DecryptionError) as caught:
        _decode(apdu)
    assert caught.value.code == "no_key"


def test_general_ciphering_with_an_agreed_key_is_refused_by_name() -> None:
    content = cipher(
        _notification(),
        system_title=SERVER_TITLE,
        invocation_counter=1,
        security_control=0x30,
        key=KEY,
        auth_key=AUTH,
    )
    head = encode_general_ciphering_full(
        content,
        originator=SERVER_TITLE,
        header=GeneralHeader(b"\x01", CLIENT_TITLE, b"", b"", None, None),
    )
    # Swap "key-info absent" (00) for agreed-key: 01 02 | key-parameters | key-ciphered-data.
    marker = b"\x00" + bytes([len(content)])
    agreed = head.replace(marker, b"\x01\x02\x01\x01\x02\xaa\xbb" + bytes([len(content)]), 1)
    ciphered, _ = parse_ciphered(agreed)
    assert ciphered.general is not None and ciphered.general.key_info == "agreed-key"
    with pytest.raises(DecryptionError) as caught:
        _decode(agreed, key=KEY, auth_key=AUTH)
    assert caught.value.code == "unsupported"
    assert "agreed-key" in str(caught.value)


# ------------------------------------------------------------ authentication only (SC 0x10)


def _auth_only(body: bytes, *, key: bytes = KEY, auth_key: bytes = AUTH) -> bytes:
    content = cipher(
        body,
        system_title=SERVER_TITLE,
        invocation_counter=42,
        security_control=0x10,
        key=key,
        auth_key=auth_key,
    )
    return encode_general_ciphering(content, system_title=SERVER_TITLE, tag=GENERAL_GLO_CIPHERING)


def test_authentication_only_body_is_clear_and_its_tag_checked() -> None:
    apdu = _auth_only(_notification())
    assert _notification() in apdu  # the body travels in clear
    checked = _decode(apdu, key=KEY, auth_key=AUTH)
    assert checked["frame"]["authenticated"] is True
    assert checked["frame"]["encrypted"] is False
    assert checked["frame"]["tag_verified"] is True
    assert _energy(checked) == Decimal("123.456")
    # Without the keys the clear body still decodes; the tag is reported as not checked.
    unchecked = _decode(apdu)
    assert unchecked["frame"]["tag_verified"] is False
    assert _energy(unchecked) == Decimal("123.456")


def test_authentication_only_with_a_bad_tag_says_so() -> None:
    apdu = bytearray(_auth_only(_notification()))
    apdu[-1] ^= 0x01  # the last byte of the GMAC tag
    with pytest.raises(DecryptionError) as caught:
        _decode(bytes(apdu), key=KEY, auth_key=AUTH)
    assert caught.value.code == "bad_tag"
    assert "authenticated-only" in str(caught.value)
    # A changed value in the clear body breaks the tag the same way.
    altered = _auth_only(_notification()).replace(
        (123456).to_bytes(4, "big"), (999999).to_bytes(4, "big")
    )
    with pytest.raises(DecryptionError) as caught:
        _decode(altered, key=KEY, auth_key=AUTH)
    assert caught.value.code == "bad_tag"
    with pytest.raises(DecryptionError) as caught:
        _decode(_auth_only(_notification()), key=KEY, auth_key=OTHER_KEY)
    assert caught.value.code == "bad_tag"


# ------------------------------------------------------------ glo-/ded- service APDUs


def _service(plain: bytes, tag: int, *, sc: int = 0x30, counter: int = 0x10) -> bytes:
    content = cipher(
        plain,
        system_title=SERVER_TITLE,
        invocation_counter=counter,
        security_control=sc,
        key=KEY,
        auth_key=AUTH,
    )
    return encode_service_ciphering(content, tag=tag)


def _get_energy() -> bytes:
    return encode_get_response([Data(DOUBLE_LONG_UNSIGNED, 4711)], invoke_id=3)


def test_glo_get_response_uses_the_system_title_of_the_aare() -> None:
    decoder = DlmsDecoder()
    aare = _decode(encode_aare(system_title=SERVER_TITLE), decoder)
    assert aare["frame"]["association"]["system_title"] == SERVER_TITLE.hex()
    result = _decode(_service(_get_energy(), 0xCC), decoder, key=KEY, auth_key=AUTH)
    frame = result["frame"]
    assert frame["cipher"] == "glo-get-response"
    assert frame["apdu"] == "get-response"
    assert frame["invoke_id"] == 3
    assert frame["tag_verified"] is True
    assert [r.value for r in result["records"]] == [4711]


@pytest.mark.parametrize("sc", [0x30, 0x20, 0x10])
def test_service_apdus_with_a_given_system_title(sc: int) -> None:
    decoder = DlmsDecoder(system_title=SERVER_TITLE)
    got = _decode(_service(_get_energy(), 0xD4, sc=sc), decoder, key=KEY, auth_key=AUTH)
    assert got["frame"]["cipher"] == "ded-get-response"
    assert [r.value for r in got["records"]] == [4711]
    written = _decode(
        _service(encode_set_response([0], invoke_id=2), 0xCD, sc=sc),
        decoder,
        key=KEY,
        auth_key=AUTH,
    )
    assert written["frame"]["cipher"] == "glo-set-response"
    assert written["frame"]["apdu"] == "set-response"
    assert written["frame"]["data_access_results"] == [0]
    action = bytes.fromhex("C701C100") + b"\x00"  # ACTION-Response-Normal, success, no data
    acted = _decode(_service(action, 0xCF, sc=sc), decoder, key=KEY, auth_key=AUTH)
    assert acted["frame"]["cipher"] == "glo-action-response"
    assert acted["frame"]["action_result"] == 0


def test_service_apdu_without_a_known_system_title_names_what_is_missing() -> None:
    with pytest.raises(DecryptionError) as caught:
        _decode(_service(_get_energy(), 0xCC), key=KEY, auth_key=AUTH)
    assert caught.value.code == "no_system_title"
    assert "AARE" in str(caught.value)


def test_service_apdu_with_a_wrong_key_or_the_wrong_inner_apdu() -> None:
    decoder = DlmsDecoder(system_title=SERVER_TITLE)
    with pytest.raises(DecryptionError) as caught:
        _decode(_service(_get_energy(), 0xCC), decoder, key=OTHER_KEY, auth_key=AUTH)
    assert caught.value.code == "wrong_key"
    with pytest.raises(DecryptionError) as caught:
        _decode(_service(_get_energy(), 0xCC, sc=0x20), decoder, key=OTHER_KEY)
    assert caught.value.code == "wrong_key"
    # A glo-set-response must hold a SET response, not a GET response.
    with pytest.raises(DecryptionError) as caught:
        _decode(_service(_get_energy(), 0xCD), decoder, key=KEY, auth_key=AUTH)
    assert "0xc5" in str(caught.value)


def test_set_response_forms_and_exception_response() -> None:
    decoder = DlmsDecoder()
    with_list = _decode(encode_set_response([0, 3, 0]), decoder)
    assert with_list["frame"]["data_access_results"] == [0, 3, 0]
    last_block = bytes([SET_RESPONSE, 0x03, 0xC1, 0x00, 0, 0, 0, 2])
    assert _decode(last_block, decoder)["frame"]["block_number"] == 2
    # The server refuses a request it could not decipher, with the counter it expects.
    refused = _decode(bytes.fromhex("D801060000002A"), decoder)
    assert refused["frame"]["exception"] == {
        "state_error": "service-not-allowed",
        "service_error": "invocation-counter-error",
        "detail": 42,
    }
    with pytest.raises(FrameError):
        _decode(bytes([SET_RESPONSE, 0x09, 0xC1]), decoder)


def test_glo_event_notification_carries_one_attribute() -> None:
    event = (
        b"\xc2\x00"  # no time
        + (3).to_bytes(2, "big")
        + ENERGY_OBIS
        + b"\x02"
        + bytes([DOUBLE_LONG_UNSIGNED])
        + (5000).to_bytes(4, "big")
    )
    decoder = DlmsDecoder(system_title=SERVER_TITLE)
    got = _decode(_service(event, 0xCA), decoder, key=KEY, auth_key=AUTH)
    assert got["frame"]["cipher"] == "glo-event-notification-request"
    assert got["frame"]["attribute"] == "3/1-0:1.8.0/2"
    assert [(r.obis, r.value) for r in got["records"]] == [("1-0:1.8.0", 5000)]
    # Requests are not what we decode; they still decipher for a capture of both directions.
    request = _service(encode_action_request(70, "0-0:96.3.10", 1, Data(0x0F, 0)), 0xCB)
    with pytest.raises(FrameError):
        _decode(request, decoder, key=KEY, auth_key=AUTH)


def test_cli_batch_learns_the_system_title_from_the_aare() -> None:
    lines = [
        {"input": encode_aare(system_title=SERVER_TITLE).hex(), "key": None, "auth_key": None},
        {"input": _service(_get_energy(), 0xCC).hex(), "key": KEY.hex(), "auth_key": AUTH.hex()},
    ]
    done = subprocess.run(
        [str(GATEWAY), "decode", "dlms", "--batch", "-"],
        input="\n".join(json.dumps(line) for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert results[0]["frame"]["association"]["system_title"] == SERVER_TITLE.hex()
    assert results[1]["ok"] is True, results[1]
    assert results[1]["frame"]["cipher"] == "glo-get-response"
    assert [r["value"] for r in results[1]["records"]] == [4711]


def test_global_ciphering_both_ways_and_a_replayed_answer() -> None:
    client = GlobalCiphering(system_title=CLIENT_TITLE, key=KEY, auth_key=AUTH)
    server = GlobalCiphering(system_title=SERVER_TITLE, key=KEY, auth_key=AUTH)
    client.peer_title, server.peer_title = SERVER_TITLE, CLIENT_TITLE
    request = encode_get_response([Data(DOUBLE_LONG_UNSIGNED, 1)])  # any GET-family APDU
    wrapped = client.wrap(bytes([0xC0]) + request[1:])
    assert wrapped[0] == 0xC8  # glo-get-request
    assert server.unwrap(wrapped)[0] == 0xC0
    answer = server.wrap(_get_energy())
    assert answer[0] == 0xCC
    assert client.unwrap(answer) == _get_energy()
    # The same answer again: its invocation counter does not move forward.
    with pytest.raises(DecryptionError) as caught:
        client.unwrap(answer)
    assert caught.value.code == "replay"
    with pytest.raises(DecryptionError) as caught:
        client.unwrap(_get_energy())
    assert caught.value.code == "not_encrypted"
    stranger = GlobalCiphering(system_title=SERVER_TITLE, key=OTHER_KEY, auth_key=AUTH)
    with pytest.raises(DecryptionError) as caught:
        client.unwrap(stranger.wrap(_get_energy()))
    assert caught.value.code == "wrong_key"
