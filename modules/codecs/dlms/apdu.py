"""xDLMS APDUs (Green Book 9.5): Data-Notification, General Block Transfer, and the client set.

The client set (AARQ/AARE, GET, ACTION, RLRQ/RLRE) is what a DLMS client needs for no
security and for a low-level password; its decoders accept what a server sends back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modules.codecs.dlms.axdr import (
    CosemDateTime,
    Data,
    Reader,
    decode_data,
    encode_data,
    encode_length,
    obis_text,
)
from modules.codecs.errors import FrameError

__all__ = [
    "AARE",
    "AARQ",
    "ACTION_REQUEST",
    "ACTION_RESPONSE",
    "AUTHENTICATION_REQUIRED",
    "DATA_NOTIFICATION",
    "GENERAL_BLOCK_TRANSFER",
    "GET_REQUEST",
    "GET_RESPONSE",
    "MECHANISM_HLS_GMAC",
    "MECHANISM_LLS",
    "RLRE",
    "RLRQ",
    "ActionResponse",
    "Association",
    "BlockAssembler",
    "DataNotification",
    "EventNotification",
    "ExceptionResponse",
    "GeneralBlock",
    "GetResponse",
    "SetResponse",
    "aarq_items",
    "decode_aare",
    "decode_action_response",
    "decode_event_notification",
    "decode_exception_response",
    "decode_get_response",
    "decode_set_response",
    "encode_aare",
    "encode_aarq",
    "encode_action_request",
    "encode_block",
    "encode_data_notification",
    "encode_get_request",
    "encode_get_request_with_list",
    "encode_get_response",
    "encode_release_request",
    "encode_set_response",
    "initiate_request",
    "initiate_response",
    "inner_octets",
    "obis_bytes",
    "parse_block",
    "parse_data_notification",
    "parse_initiate_response",
]

DATA_NOTIFICATION = 0x0F
AARQ = 0x60
AARE = 0x61
RLRQ = 0x62
RLRE = 0x63
GET_REQUEST = 0xC0
SET_REQUEST = 0xC1
EVENT_NOTIFICATION = 0xC2
ACTION_REQUEST = 0xC3
GET_RESPONSE = 0xC4
SET_RESPONSE = 0xC5
ACTION_RESPONSE = 0xC7
EXCEPTION_RESPONSE = 0xD8
GENERAL_BLOCK_TRANSFER = 0xE0
DATE_TIME_BYTES = 12

# Green Book 9.4.2: application context and mechanism names (joint-iso-ccitt(2) country(16)
# country-name(756) identified-organization(5) DLMS-UA(8) ...), BER encoded.
_CONTEXT_LN_NO_CIPHERING = bytes.fromhex("60857405080101")
_CONTEXT_LN_CIPHERING = bytes.fromhex("60857405080103")
MECHANISM_LLS = bytes.fromhex("60857405080201")
MECHANISM_HLS_GMAC = bytes.fromhex("60857405080205")  # mechanism id 5: HLS with GMAC
AUTHENTICATION_REQUIRED = 14  # acse-service-user diagnostic of an AARE that awaits HLS pass 3
DLMS_VERSION = 6
# Conformance block (Green Book 9.4.6.1): block-transfer-with-get/set/action, get, set,
# selective access, action, multiple references, data-notification.
CONFORMANCE_DEFAULT = 0x00FE1F
MAX_PDU_DEFAULT = 0xFFFF


def obis_bytes(code: str) -> bytes:
    """6 logical-name bytes from ``A-B:C.D.E[*F]`` (F defaults to 255)."""
    text = code.strip()
    head, _, tail = text.partition(":")
    a, b = (int(x) for x in head.split("-"))
    rest, _, f_text = tail.replace("*", ".", 1).partition(".")
    parts = [rest, *f_text.split(".")] if f_text else [rest]
    numbers = [int(x) for x in parts]
    if len(numbers) == 3:
        numbers.append(255)
    if len(numbers) != 4:
        raise ValueError(f"not an OBIS code: {code!r}")
    return bytes([a, b, *numbers])


# ---------------------------------------------------------------- Data-Notification


@dataclass(frozen=True, slots=True)
class DataNotification:
    """A pushed Data-Notification: invoke id, optional date-time, body."""

    invoke_id: int
    priority_high: bool
    date_time: CosemDateTime | None
    date_time_form: str  # "absent", "octet-string", "typed-octet-string" or "date-time"
    body: Data

    def facts(self) -> dict[str, Any]:
        """Frame facts for ``Decoded.frame``."""
        return {
            "apdu": "data-notification",
            "long_invoke_id": self.invoke_id,
            "priority_high": self.priority_high,
            "date_time_form": self.date_time_form,
            "date_time": None if self.date_time is None else self.date_time.iso(),
        }


def parse_data_notification(data: bytes, start: int = 0, *, base: int = 0) -> DataNotification:
    """Read ``0F | long-invoke-id-and-priority | date-time | notification-body``."""
    reader = Reader(data, start, base=base)
    if reader.byte("APDU tag") != DATA_NOTIFICATION:
        raise FrameError("not a Data-Notification", offset=base + start)
    invoke = int.from_bytes(reader.take(4, "long-invoke-id-and-priority"), "big")
    # Three encodings are seen for the optional date-time: 00 (absent), 0C + 12 octets (the
    # length-prefixed OCTET STRING of the standard), and 09 0C + 12 (a typed octet-string).
    first = reader.byte("date-time")
    stamp: CosemDateTime | None = None
    if first == 0x00:
        form = "absent"
    elif first == DATE_TIME_BYTES:
        form = "octet-string"
        stamp = CosemDateTime.parse(reader.take(DATE_TIME_BYTES, "date-time"))
    elif first == 0x09 and reader.peek() == DATE_TIME_BYTES:
        reader.byte("date-time length")
        form = "typed-octet-string"
        stamp = CosemDateTime.parse(reader.take(DATE_TIME_BYTES, "date-time"))
    elif first == 0x19:
        form = "date-time"
        stamp = CosemDateTime.parse(reader.take(DATE_TIME_BYTES, "date-time"))
    else:
        raise FrameError(
            f"Data-Notification date-time starts with 0x{first:02x}",
            offset=base + reader.pos - 1,
        )
    body = decode_data(reader)
    return DataNotification(invoke & 0x00FFFFFF, bool(invoke & 0x80000000), stamp, form, body)


def encode_data_notification(
    body: Data,
    *,
    invoke_id: int = 0,
    priority_high: bool = False,
    date_time: CosemDateTime | None = None,
    date_time_form: str = "octet-string",
) -> bytes:
    """The Data-Notification APDU (date-time in one of the three accepted forms)."""
    invoke = (invoke_id & 0x00FFFFFF) | (0x80000000 if priority_high else 0)
    out = bytes([DATA_NOTIFICATION]) + invoke.to_bytes(4, "big")
    if date_time is None:
        out += b"\x00"
    elif date_time_form == "typed-octet-string":
        out += b"\x09\x0c" + date_time.to_bytes()
    elif date_time_form == "date-time":
        out += b"\x19" + date_time.to_bytes()
    else:
        out += b"\x0c" + date_time.to_bytes()
    return out + encode_data(body)


# ---------------------------------------------------------------- General Block Transfer


@dataclass(frozen=True, slots=True)
class GeneralBlock:
    """One General-Block-Transfer block (Green Book 9.3.14)."""

    last: bool
    streaming: bool
    window: int
    number: int
    ack: int
    data: bytes
    size: int


def parse_block(data: bytes, start: int = 0, *, base: int = 0) -> GeneralBlock:
    """Read ``E0 | BTI | block-number(2) | ack(2) | block-data``."""
    reader = Reader(data, start, base=base)
    if reader.byte("APDU tag") != GENERAL_BLOCK_TRANSFER:
        raise FrameError("not a General-Block-Transfer APDU", offset=base + start)
    control = reader.byte("block control")
    number = int.from_bytes(reader.take(2, "block number"), "big")
    ack = int.from_bytes(reader.take(2, "block number ack"), "big")
    payload = reader.take(reader.length("block data length"), "block data")
    return GeneralBlock(
        bool(control & 0x80),
        bool(control & 0x40),
        control & 0x3F,
        number,
        ack,
        payload,
        reader.pos - start,
    )


def encode_block(
    payload: bytes, *, number: int, last: bool, ack: int = 0, streaming: bool = True
) -> bytes:
    """One General-Block-Transfer APDU."""
    control = (0x80 if last else 0) | (0x40 if streaming else 0)
    head = bytes([GENERAL_BLOCK_TRANSFER, control]) + number.to_bytes(2, "big")
    return head + ack.to_bytes(2, "big") + encode_length(len(payload)) + payload


@dataclass(slots=True)
class BlockAssembler:
    """Joins General-Block-Transfer blocks in block-number order, across calls."""

    blocks: dict[int, bytes] = field(default_factory=dict)

    def feed(self, block: GeneralBlock) -> bytes | None:
        """The whole APDU once the last block arrived and none is missing, else None."""
        if block.number == 1:
            self.blocks.clear()
        self.blocks[block.number] = block.data
        if not block.last:
            return None
        numbers = sorted(self.blocks)
        complete = numbers == list(range(1, block.number + 1))
        joined = b"".join(self.blocks[n] for n in numbers)
        self.blocks.clear()
        if not complete:
            raise FrameError(
                f"block transfer ended at block {block.number} with blocks {numbers}",
                code="truncated",
            )
        return joined

    @property
    def pending(self) -> bool:
        """Blocks are waiting for the last one."""
        return bool(self.blocks)


# ---------------------------------------------------------------- association (ACSE)


def _ber(tag: int, content: bytes) -> bytes:
    if len(content) > 0x7F:
        raise ValueError("BER content over 127 bytes is not needed by AARQ/AARE")
    return bytes([tag, len(content)]) + content


def initiate_request(
    conformance: int = CONFORMANCE_DEFAULT, max_pdu: int = MAX_PDU_DEFAULT
) -> bytes:
    """xDLMS InitiateRequest, A-XDR: no dedicated key, response-allowed default, no QoS."""
    body = bytes([0x01, 0x00, 0x00, 0x00, DLMS_VERSION])
    body += b"\x5f\x1f\x04\x00" + conformance.to_bytes(3, "big") + max_pdu.to_bytes(2, "big")
    return body


def encode_aarq(
    *,
    password: bytes | None = None,
    conformance: int = CONFORMANCE_DEFAULT,
    max_pdu: int = MAX_PDU_DEFAULT,
    calling_title: bytes | None = None,
    user_information: bytes | None = None,
    mechanism: bytes = MECHANISM_LLS,
) -> bytes:
    """AARQ for logical-name referencing; ``password`` selects LLS.

    A ciphered association names the client's system title (``calling_title``) and carries
    its InitiateRequest ciphered (a glo-initiate-request) as ``user_information``. With
    ``mechanism=MECHANISM_HLS_GMAC``, ``password`` is the client's challenge (CtoS).
    """
    ciphered = calling_title is not None
    context = _CONTEXT_LN_CIPHERING if ciphered else _CONTEXT_LN_NO_CIPHERING
    parts = _ber(0xA1, _ber(0x06, context))
    if calling_title is not None:
        parts += _ber(0xA6, _ber(0x04, calling_title))
    if password is not None:
        parts += _ber(0x8A, b"\x07\x80")  # acse-requirements: authentication
        parts += _ber(0x8B, mechanism)
        parts += _ber(0xAC, _ber(0x80, password))
    initiate = user_information or initiate_request(conformance, max_pdu)
    parts += _ber(0xBE, _ber(0x04, initiate))
    return _ber(AARQ, parts)


@dataclass(frozen=True, slots=True)
class Association:
    """What an AARE says: accepted or not, and the negotiated xDLMS parameters."""

    accepted: bool
    result: int
    diagnostic: int | None
    context: bytes
    conformance: int | None
    max_pdu: int | None
    dlms_version: int | None
    # The server's system title (responding-AP-title), sent when the association is ciphered:
    # the IV of every service-specific ciphered APDU it sends afterwards starts with it.
    system_title: bytes | None = None
    user_information: bytes = b""  # the InitiateResponse, or the glo-initiate-response
    challenge: bytes | None = None  # the server's HLS challenge (StoC), pass 2

    @property
    def ciphered(self) -> bool:
        """The server agreed to the logical-name-with-ciphering context."""
        return self.context == _CONTEXT_LN_CIPHERING


def initiate_response(conformance: int = CONFORMANCE_DEFAULT, max_pdu: int = 0x0400) -> bytes:
    """xDLMS InitiateResponse: no QoS, version 6, conformance, max PDU, VAA name 0x0007."""
    response = bytes([0x08, 0x00, DLMS_VERSION]) + b"\x5f\x1f\x04\x00"
    return response + conformance.to_bytes(3, "big") + max_pdu.to_bytes(2, "big") + b"\x00\x07"


def parse_initiate_response(user: bytes) -> tuple[int | None, int | None, int | None]:
    """(DLMS version, conformance, max PDU) of an InitiateResponse (Nones when it is not one)."""
    if len(user) < 12 or user[0] != 0x08:
        return None, None, None
    # InitiateResponse: tag 08, QoS (00 absent), version, 5F1F 04 00 conformance, max PDU.
    offset = 2 if user[1] == 0 else 3
    version = user[offset]
    block = user[offset + 1 :]
    if block[:2] != b"\x5f\x1f":
        return version, None, None
    return version, int.from_bytes(block[4:7], "big"), int.from_bytes(block[7:9], "big")


def encode_aare(
    *,
    result: int = 0,
    diagnostic: int = 0,
    conformance: int = CONFORMANCE_DEFAULT,
    max_pdu: int = 0x0400,
    system_title: bytes | None = None,
    user_information: bytes | None = None,
    challenge: bytes | None = None,
) -> bytes:
    """AARE as a server (or an emulator) answers an AARQ; a system title means ciphering.

    ``user_information`` replaces the plain InitiateResponse (a glo-initiate-response);
    ``challenge`` is the server's HLS challenge (StoC), with diagnostic 14.
    """
    context = _CONTEXT_LN_NO_CIPHERING if system_title is None else _CONTEXT_LN_CIPHERING
    parts = _ber(0xA1, _ber(0x06, context))
    parts += _ber(0xA2, _ber(0x02, bytes([result])))
    parts += _ber(0xA3, _ber(0xA1, _ber(0x02, bytes([diagnostic]))))
    if system_title is not None:
        parts += _ber(0xA4, _ber(0x04, system_title))
    if challenge is not None:
        parts += _ber(0x88, b"\x07\x80")  # responder-acse-requirements: authentication
        parts += _ber(0x89, MECHANISM_HLS_GMAC)
        parts += _ber(0xAA, _ber(0x80, challenge))
    user = user_information or initiate_response(conformance, max_pdu)
    parts += _ber(0xBE, _ber(0x04, user))
    return _ber(AARE, parts)


def aarq_items(data: bytes) -> dict[int, bytes]:
    """The tagged items of an AARQ (raises FrameError when it is not one)."""
    reader = Reader(data)
    if reader.byte("APDU tag") != AARQ:
        raise FrameError("not an AARQ", offset=0)
    return _ber_items(reader.take(reader.length("AARQ length"), "AARQ"))


def inner_octets(item: bytes, tag: int = 0x04) -> bytes | None:
    """The value inside a constructed item (``A6 0A 04 08 <title>`` -> the title)."""
    return _ber_items(item).get(tag)


def _ber_items(data: bytes) -> dict[int, bytes]:
    items: dict[int, bytes] = {}
    reader = Reader(data)
    while reader.remaining:
        tag = reader.byte("BER tag")
        items[tag] = reader.take(reader.length("BER length"), "BER value")
    return items


def decode_aare(data: bytes) -> Association:
    """Read an AARE (raises FrameError when it is not one)."""
    reader = Reader(data)
    if reader.byte("APDU tag") != AARE:
        raise FrameError("not an AARE", offset=0)
    items = _ber_items(reader.take(reader.length("AARE length"), "AARE"))
    context = _ber_items(items.get(0xA1, b"")).get(0x06, b"")
    result_bytes = _ber_items(items.get(0xA2, b"")).get(0x02, b"\x01")
    diagnostic: int | None = None
    if 0xA3 in items:
        for value in _ber_items(items[0xA3]).values():
            inner = _ber_items(value).get(0x02)
            diagnostic = inner[0] if inner else None
    user = _ber_items(items.get(0xBE, b"")).get(0x04, b"")
    version, conformance, max_pdu = parse_initiate_response(user)
    result = result_bytes[0] if result_bytes else 1
    title = _ber_items(items[0xA4]).get(0x04) if 0xA4 in items else None
    challenge = _ber_items(items[0xAA]).get(0x80) if 0xAA in items else None
    return Association(
        result == 0,
        result,
        diagnostic,
        context,
        conformance,
        max_pdu,
        version,
        title or None,
        user,
        challenge,
    )


def encode_release_request() -> bytes:
    """RLRQ with reason normal."""
    return bytes([RLRQ, 0x03, 0x80, 0x01, 0x00])


# ---------------------------------------------------------------- GET and ACTION


def _descriptor(class_id: int, obis: str, index: int) -> bytes:
    return class_id.to_bytes(2, "big") + obis_bytes(obis) + bytes([index])


def encode_get_request(class_id: int, obis: str, attribute: int, *, invoke_id: int = 1) -> bytes:
    """GET-Request-Normal for one attribute, no selective access."""
    head = bytes([GET_REQUEST, 0x01, 0xC0 | (invoke_id & 0x0F)])
    return head + _descriptor(class_id, obis, attribute) + b"\x00"


def encode_get_request_with_list(
    attributes: list[tuple[int, str, int]], *, invoke_id: int = 1
) -> bytes:
    """GET-Request-With-List for (class id, OBIS, attribute) triples."""
    out = bytes([GET_REQUEST, 0x03, 0xC0 | (invoke_id & 0x0F)]) + encode_length(len(attributes))
    for class_id, obis, attribute in attributes:
        out += _descriptor(class_id, obis, attribute) + b"\x00"
    return out


@dataclass(frozen=True, slots=True)
class GetResponse:
    """A GET response: one result per requested attribute (Data, or a data-access-result)."""

    invoke_id: int
    results: tuple[Data | int, ...]
    block_number: int | None = None
    last_block: bool = True
    raw_block: bytes | None = None


def encode_get_response(results: list[Data | int], *, invoke_id: int = 1) -> bytes:
    """GET-Response-Normal (one result) or With-List (several)."""

    def one(result: Data | int) -> bytes:
        return b"\x00" + encode_data(result) if isinstance(result, Data) else bytes([1, result])

    iid = 0xC0 | (invoke_id & 0x0F)
    if len(results) == 1:
        return bytes([GET_RESPONSE, 0x01, iid]) + one(results[0])
    return (
        bytes([GET_RESPONSE, 0x03, iid])
        + encode_length(len(results))
        + b"".join(one(r) for r in results)
    )


def decode_get_response(data: bytes) -> GetResponse:
    """Read a GET response: normal, with-list, or one data block."""
    reader = Reader(data)
    if reader.byte("APDU tag") != GET_RESPONSE:
        raise FrameError("not a GET response", offset=0)
    kind = reader.byte("GET response type")
    invoke = reader.byte("invoke id") & 0x0F

    def result() -> Data | int:
        choice = reader.byte("get-data-result")
        return decode_data(reader) if choice == 0 else reader.byte("data-access-result")

    if kind == 0x01:
        return GetResponse(invoke, (result(),))
    if kind == 0x03:
        count = reader.length("result count")
        return GetResponse(invoke, tuple(result() for _ in range(count)))
    if kind == 0x02:
        last = reader.byte("last block") != 0
        number = int.from_bytes(reader.take(4, "block number"), "big")
        if reader.byte("block result") == 0:
            raw = reader.take(reader.length("raw data length"), "raw data")
            return GetResponse(invoke, (), number, last, raw)
        return GetResponse(invoke, (reader.byte("data-access-result"),), number, last)
    raise FrameError(f"GET response type {kind} is not known", offset=1)


def encode_action_request(
    class_id: int, obis: str, method: int, parameter: Data | None = None, *, invoke_id: int = 1
) -> bytes:
    """ACTION-Request-Normal, e.g. disconnect control (class 70, 0-0:96.3.10, method 1/2)."""
    out = bytes([ACTION_REQUEST, 0x01, 0xC0 | (invoke_id & 0x0F)])
    out += _descriptor(class_id, obis, method)
    return out + (b"\x01" + encode_data(parameter) if parameter is not None else b"\x00")


@dataclass(frozen=True, slots=True)
class ActionResponse:
    """An ACTION response: the action-result enum and optional return data."""

    invoke_id: int
    result: int
    data: Data | int | None

    @property
    def success(self) -> bool:
        """Action-result 0 is success."""
        return self.result == 0


def decode_action_response(data: bytes) -> ActionResponse:
    """Read ACTION-Response-Normal."""
    reader = Reader(data)
    if reader.byte("APDU tag") != ACTION_RESPONSE:
        raise FrameError("not an ACTION response", offset=0)
    if reader.byte("ACTION response type") != 0x01:
        raise FrameError("only ACTION-Response-Normal is supported", offset=1, code="unsupported")
    invoke = reader.byte("invoke id") & 0x0F
    result = reader.byte("action-result")
    returned: Data | int | None = None
    if reader.remaining and reader.byte("return parameters present"):
        choice = reader.byte("get-data-result")
        returned = decode_data(reader) if choice == 0 else reader.byte("data-access-result")
    return ActionResponse(invoke, result, returned)


def describe_descriptor(raw: bytes) -> str:
    """``class/OBIS/index`` text of a 9-byte attribute or method descriptor."""
    return f"{int.from_bytes(raw[:2], 'big')}/{obis_text(raw[2:8])}/{raw[8]}"


# ---------------------------------------------------------------- SET, events, exceptions


@dataclass(frozen=True, slots=True)
class SetResponse:
    """A SET response: the data-access-result of each attribute written (0 = success)."""

    invoke_id: int
    results: tuple[int, ...]
    block_number: int | None = None

    @property
    def success(self) -> bool:
        """Every attribute was written."""
        return all(result == 0 for result in self.results)


def encode_set_response(results: list[int], *, invoke_id: int = 1) -> bytes:
    """SET-Response-Normal (one result) or With-List (several)."""
    iid = 0xC0 | (invoke_id & 0x0F)
    if len(results) == 1:
        return bytes([SET_RESPONSE, 0x01, iid, results[0]])
    return bytes([SET_RESPONSE, 0x05, iid]) + encode_length(len(results)) + bytes(results)


def decode_set_response(data: bytes) -> SetResponse:
    """Read a SET response (Green Book 9.5: normal, datablock ack, last datablock, with-list)."""
    reader = Reader(data)
    if reader.byte("APDU tag") != SET_RESPONSE:
        raise FrameError("not a SET response", offset=0)
    kind = reader.byte("SET response type")
    invoke = reader.byte("invoke id") & 0x0F

    def block() -> int:
        return int.from_bytes(reader.take(4, "block number"), "big")

    if kind == 0x01:
        return SetResponse(invoke, (reader.byte("data-access-result"),))
    if kind == 0x02:
        return SetResponse(invoke, (), block())
    if kind == 0x03:
        result = reader.byte("data-access-result")
        return SetResponse(invoke, (result,), block())
    if kind in (0x04, 0x05):
        count = reader.length("result count")
        results = tuple(reader.byte("data-access-result") for _ in range(count))
        return SetResponse(invoke, results, block() if kind == 0x04 else None)
    raise FrameError(f"SET response type {kind} is not known", offset=1)


@dataclass(frozen=True, slots=True)
class EventNotification:
    """An Event-Notification-Request: one attribute's value a server sends unasked."""

    time: CosemDateTime | None
    class_id: int
    obis: str
    attribute: int
    value: Data


def decode_event_notification(data: bytes, *, base: int = 0) -> EventNotification:
    """Read ``C2 | time OPTIONAL | class(2) OBIS(6) attribute(1) | value``."""
    reader = Reader(data, base=base)
    if reader.byte("APDU tag") != EVENT_NOTIFICATION:
        raise FrameError("not an Event-Notification", offset=base)
    stamp = None
    if reader.byte("time present"):
        at = reader.pos
        raw = reader.take(reader.length("time length"), "time")
        if len(raw) != DATE_TIME_BYTES:
            raise FrameError(f"event time is {len(raw)} octets, not 12", offset=base + at)
        stamp = CosemDateTime.parse(raw)
    class_id = int.from_bytes(reader.take(2, "class id"), "big")
    obis = obis_text(reader.take(6, "logical name"))
    attribute = reader.byte("attribute index")
    return EventNotification(stamp, class_id, obis, attribute, decode_data(reader))


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """An Exception-Response: the server could not even read the request (Green Book 9.5)."""

    state_error: int
    service_error: int
    detail: int | None

    def facts(self) -> dict[str, Any]:
        """Frame facts for ``Decoded.frame``."""
        return {
            "state_error": _STATE_ERRORS.get(self.state_error, self.state_error),
            "service_error": _SERVICE_ERRORS.get(self.service_error, self.service_error),
            "detail": self.detail,
        }


_STATE_ERRORS = {1: "service-not-allowed", 2: "service-unknown"}
_SERVICE_ERRORS = {
    1: "operation-not-possible",
    2: "service-not-supported",
    3: "other-reason",
    4: "pdu-too-long",
    5: "deciphering-error",
    6: "invocation-counter-error",
}
_INVOCATION_COUNTER_ERROR = 6


def decode_exception_response(data: bytes) -> ExceptionResponse:
    """Read ``D8 | state-error | service-error [| detail]``.

    The invocation-counter-error carries the counter the server expects (4 bytes); the others
    carry nothing more.
    """
    reader = Reader(data)
    if reader.byte("APDU tag") != EXCEPTION_RESPONSE:
        raise FrameError("not an Exception-Response", offset=0)
    state = reader.byte("state-error")
    service = reader.byte("service-error")
    detail = None
    if service == _INVOCATION_COUNTER_ERROR and reader.remaining >= 4:
        detail = int.from_bytes(reader.take(4, "expected invocation counter"), "big")
    return ExceptionResponse(state, service, detail)
