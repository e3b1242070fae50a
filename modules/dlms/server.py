"""The server side of DLMS (sans-IO), for the emulator: COSEM objects, APDUs, HDLC responder.

``CosemServer`` answers AARQ, GET (normal, with-list, next block), ACTION and RLRQ for a table
of objects whose attributes are read through callables, so a meter model can sit behind it.
Given the global keys it insists on a ciphered association and answers glo- APDUs.
``HdlcResponder`` is the secondary station of IEC 62056-46 around it: SNRM/UA, I-frames with
sequence numbers, segmentation both ways, DISC.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from modules.codecs.dlms.apdu import (
    AARQ,
    ACTION_REQUEST,
    ACTION_RESPONSE,
    AUTHENTICATION_REQUIRED,
    GET_REQUEST,
    GET_RESPONSE,
    MECHANISM_HLS_GMAC,
    RLRE,
    RLRQ,
    aarq_items,
    encode_aare,
    encode_get_response,
    initiate_response,
    inner_octets,
    obis_bytes,
)
from modules.codecs.dlms.axdr import Data, Reader, decode_data, encode_length
from modules.codecs.dlms.hdlc import LLC_COMMAND, LLC_RESPONSE, HdlcFrame, encode_frame
from modules.codecs.dlms.security import (
    GLO_INITIATE_REQUEST,
    GlobalCiphering,
    check_hls_gmac,
    hls_gmac,
)
from modules.codecs.errors import DecryptionError, FrameError
from modules.dlms.transports import DEFAULT_MAX_INFO, DISC, DM, SNRM, UA, i_control

__all__ = ["CosemObject", "CosemServer", "HdlcResponder"]

Getter = Callable[[], Data]
Method = Callable[[Data | None], int]  # returns the action-result (0 = success)

_READ_WRITE_DENIED = 3
_OBJECT_UNDEFINED = 4
_DATA_BLOCK_NUMBER_INVALID = 19
_REJECTED_PERMANENT = 1
_NO_REASON = 1
_CONTEXT_NOT_SUPPORTED = 2
_AUTHENTICATION_FAILURE = 13
_EXCEPTION_NOT_ASSOCIATED = b"\xd8\x01\x01"  # state-error: service-not-allowed
_EXCEPTION_SERVICE_ERROR = b"\xd8\x02\x02"  # service-error: operation-not-possible
_AARQ_PASSWORD = 0xAC  # calling-authentication-value
_GET_NORMAL, _GET_NEXT, _GET_WITH_LIST = 1, 2, 3
_OTHER_REASON = 250
_CURRENT_ASSOCIATION = (15, bytes([0, 0, 40, 0, 0, 255]))
_REPLY_TO_HLS = 1
_CHALLENGE_BYTES = 16


@dataclass(slots=True)
class CosemObject:
    """An interface object: readable attributes and invocable methods."""

    class_id: int
    obis: str
    attributes: dict[int, Getter] = field(default_factory=dict)
    methods: dict[int, Method] = field(default_factory=dict)


class CosemServer:
    """One logical device: associations (none or LLS), GET and ACTION on its objects."""

    def __init__(
        self,
        objects: list[CosemObject],
        *,
        password: bytes | None,
        max_pdu: int = 0x0400,
        keys: tuple[bytes, bytes | None] | None = None,
        system_title: bytes = b"KAM\x00\x00\x00\x00\x01",
    ) -> None:
        self._objects = {(o.class_id, obis_bytes(o.obis)): o for o in objects}
        self._password = password
        # (encryption key, authentication key): only ciphered associations are accepted.
        self._keys = keys
        self.system_title = system_title
        self._cipher: GlobalCiphering | None = None
        # HLS passes 3 and 4 outstanding: (client's challenge, ours).
        self._hls: tuple[bytes, bytes] | None = None
        self.max_pdu = max_pdu
        self.associated = False
        self.authenticated = False
        self._blocks: list[bytes] = []
        self._block_invoke = 0

    def handle(self, apdu: bytes) -> bytes:
        """The answer to one client APDU (an exception-response to what it cannot read)."""
        try:
            if self._keys is None or not apdu or apdu[0] in (AARQ, RLRQ):
                return self._handle(apdu)
            if self._cipher is None or not self.associated:
                return _EXCEPTION_NOT_ASSOCIATED
            try:
                plain = self._cipher.unwrap(apdu)
            except DecryptionError:
                return (
                    _EXCEPTION_SERVICE_ERROR  # plain requests too: this meter wants them ciphered
                )
            answer = self._handle(plain)
            return (
                answer if answer[:1] == _EXCEPTION_NOT_ASSOCIATED[:1] else self._cipher.wrap(answer)
            )
        except FrameError:
            return _EXCEPTION_SERVICE_ERROR

    def _handle(self, apdu: bytes) -> bytes:
        tag = apdu[0] if apdu else -1
        if tag == AARQ:
            return self._associate(apdu)
        if tag == RLRQ:
            self.associated = self.authenticated = False
            self._hls = None
            return bytes([RLRE, 0x03, 0x80, 0x01, 0x00])
        if not self.associated:
            return _EXCEPTION_NOT_ASSOCIATED
        if self._hls is not None:
            return self._reply_to_hls(apdu) if tag == ACTION_REQUEST else _EXCEPTION_NOT_ASSOCIATED
        if tag == GET_REQUEST:
            return self._get(apdu)
        if tag == ACTION_REQUEST:
            return self._action(apdu)
        return _EXCEPTION_NOT_ASSOCIATED

    def _associate(self, apdu: bytes) -> bytes:
        if self._keys is not None and aarq_items(apdu).get(0x8B) == MECHANISM_HLS_GMAC:
            return self._associate_ciphered(apdu, authenticated=False)
        password = _aarq_password(apdu)
        if password is not None and password != self._password:
            self.associated = self.authenticated = False
            return encode_aare(result=_REJECTED_PERMANENT, diagnostic=_AUTHENTICATION_FAILURE)
        if self._keys is not None:
            return self._associate_ciphered(apdu, password is not None)
        self.associated = True
        self.authenticated = password is not None
        return encode_aare(max_pdu=self.max_pdu)

    def _associate_ciphered(self, apdu: bytes, authenticated: bool) -> bytes:
        assert self._keys is not None
        self.associated = self.authenticated = False
        self._hls = None
        items = aarq_items(apdu)
        title = inner_octets(items.get(0xA6, b""))
        user = inner_octets(items.get(0xBE, b"")) or b""
        if title is None or user[:1] != bytes([GLO_INITIATE_REQUEST]):
            return encode_aare(result=_REJECTED_PERMANENT, diagnostic=_CONTEXT_NOT_SUPPORTED)
        key, auth_key = self._keys
        cipher = GlobalCiphering(system_title=self.system_title, key=key, auth_key=auth_key)
        cipher.peer_title = title
        try:
            cipher.unwrap(user)
        except DecryptionError:
            return encode_aare(result=_REJECTED_PERMANENT, diagnostic=_NO_REASON)
        self._cipher = cipher
        self.associated = True
        self.authenticated = authenticated
        if items.get(0x8B) != MECHANISM_HLS_GMAC:
            return encode_aare(
                system_title=self.system_title,
                user_information=cipher.wrap(initiate_response(max_pdu=self.max_pdu)),
            )
        # HLS-GMAC: the AARQ's authentication value is the client's challenge; ours goes back
        # and only reply_to_HLS_authentication is served until the client answered it.
        client_challenge = inner_octets(items.get(0xAC, b""), 0x80) or b""
        own = secrets.token_bytes(_CHALLENGE_BYTES)
        self._hls = (client_challenge, own)
        self.authenticated = False
        return encode_aare(
            diagnostic=AUTHENTICATION_REQUIRED,
            system_title=self.system_title,
            user_information=cipher.wrap(initiate_response(max_pdu=self.max_pdu)),
            challenge=own,
        )

    def _reply_to_hls(self, apdu: bytes) -> bytes:
        """Check f(StoC) in reply_to_HLS_authentication; answer f(CtoS) when it holds."""
        assert self._hls is not None and self._cipher is not None and self._keys is not None
        reader = Reader(apdu, 1)
        reader.byte("ACTION request type")
        invoke = reader.byte("invoke id") & 0x0F
        class_id, logical_name, method = _descriptor(reader)
        head = bytes([ACTION_RESPONSE, 0x01, 0xC0 | invoke])
        if (class_id, logical_name) != _CURRENT_ASSOCIATION or method != _REPLY_TO_HLS:
            return head + bytes([_READ_WRITE_DENIED, 0x00])
        parameter = decode_data(reader) if reader.byte("parameter present") else None
        client_challenge, own = self._hls
        key, auth_key = self._keys
        peer = self._cipher.peer_title
        reply = parameter.value if parameter is not None else None
        if (
            auth_key is None
            or peer is None
            or not isinstance(reply, bytes)
            or not check_hls_gmac(reply, own, system_title=peer, key=key, auth_key=auth_key)
        ):
            return head + bytes([_OTHER_REASON, 0x00])
        self._hls = None
        self.authenticated = True
        self._cipher.invocation_counter += 1
        answer = hls_gmac(
            client_challenge,
            system_title=self.system_title,
            invocation_counter=self._cipher.invocation_counter,
            key=key,
            auth_key=auth_key,
        )
        return head + b"\x00\x01\x00" + bytes([0x09, len(answer)]) + answer

    def _get(self, apdu: bytes) -> bytes:
        reader = Reader(apdu, 1)
        kind = reader.byte("GET request type")
        invoke = reader.byte("invoke id") & 0x0F
        if kind == _GET_NEXT:
            number = int.from_bytes(reader.take(4, "block number"), "big")
            return self._next_block(invoke, number)
        if kind == _GET_NORMAL:
            count = 1
        elif kind == _GET_WITH_LIST:
            count = reader.length("attribute count")
        else:
            return _EXCEPTION_NOT_ASSOCIATED
        results = []
        for _ in range(count):
            class_id, logical_name, attribute = _descriptor(reader)
            if reader.byte("access selection"):
                raise FrameError("selective access is not emulated", code="unsupported")
            results.append(self._read(class_id, logical_name, attribute))
        answer = encode_get_response(results, invoke_id=invoke)
        if len(answer) <= self.max_pdu:
            return answer
        raw = answer[3:] if kind == _GET_WITH_LIST else answer[4:]
        return self._first_block(invoke, raw)

    def _read(self, class_id: int, logical_name: bytes, attribute: int) -> Data | int:
        target = self._objects.get((class_id, logical_name))
        if target is None:
            return _OBJECT_UNDEFINED
        if attribute == 1:
            return Data(0x09, logical_name)
        getter = target.attributes.get(attribute)
        return getter() if getter is not None else _OBJECT_UNDEFINED

    def _first_block(self, invoke: int, raw: bytes) -> bytes:
        # The raw data of a with-list answer is its count and results; of a normal one, the Data.
        size = max(self.max_pdu - 16, 16)
        self._blocks = [raw[i : i + size] for i in range(0, len(raw), size)]
        self._block_invoke = invoke
        return self._next_block(invoke, 0)

    def _next_block(self, invoke: int, acknowledged: int) -> bytes:
        head = bytes([GET_RESPONSE, _GET_NEXT, 0xC0 | invoke])
        number = acknowledged + 1
        if invoke != self._block_invoke or not 1 <= number <= len(self._blocks):
            refused = bytes([1, _DATA_BLOCK_NUMBER_INVALID])
            return head + b"\x01" + number.to_bytes(4, "big") + refused
        block = self._blocks[number - 1]
        last = number == len(self._blocks)
        body = bytes([1 if last else 0]) + number.to_bytes(4, "big") + b"\x00"
        return head + body + encode_length(len(block)) + block

    def _action(self, apdu: bytes) -> bytes:
        reader = Reader(apdu, 1)
        kind = reader.byte("ACTION request type")
        invoke = reader.byte("invoke id") & 0x0F
        if kind != 1:
            return _EXCEPTION_NOT_ASSOCIATED
        class_id, logical_name, method = _descriptor(reader)
        parameter = decode_data(reader) if reader.byte("parameter present") else None
        target = self._objects.get((class_id, logical_name))
        if target is None or method not in target.methods:
            result = _OBJECT_UNDEFINED
        elif not self.authenticated:
            result = _READ_WRITE_DENIED  # methods that switch the supply need LLS at least
        else:
            result = target.methods[method](parameter)
        return bytes([ACTION_RESPONSE, 0x01, 0xC0 | invoke, result, 0x00])


def _descriptor(reader: Reader) -> tuple[int, bytes, int]:
    class_id = int.from_bytes(reader.take(2, "class id"), "big")
    logical_name = reader.take(6, "logical name")
    return class_id, logical_name, reader.byte("attribute or method id")


def _aarq_password(apdu: bytes) -> bytes | None:
    """The LLS secret in an AARQ (calling-authentication-value), or None."""
    reader = Reader(apdu, 1)
    body = Reader(reader.take(reader.length("AARQ length"), "AARQ"))
    while body.remaining:
        tag = body.byte("AARQ item tag")
        value = body.take(body.length("AARQ item length"), "AARQ item")
        if tag == _AARQ_PASSWORD:
            inner = Reader(value)
            inner.byte("authentication value choice")
            return inner.take(inner.length("password length"), "password")
    return None


class HdlcResponder:
    """The meter's HDLC station: answers frames addressed to it with frames to send back."""

    def __init__(self, server: CosemServer, *, address: int, address_size: int = 1) -> None:
        self._server = server
        self._address = address
        self._address_size = address_size
        self.max_info = DEFAULT_MAX_INFO
        self.connected = False
        self._send_seq = self._receive_seq = 0
        self._incoming: list[bytes] = []
        self._outgoing: list[bytes] = []

    def receive(self, frame: HdlcFrame) -> list[bytes]:
        """Frames to send in answer (none for frames addressed to someone else)."""
        if frame.dest != self._address:
            return []
        client = frame.src
        command = frame.control & ~0x10
        if command == SNRM & ~0x10:
            self.connected = True
            self._send_seq = self._receive_seq = 0
            self._incoming.clear()
            self._outgoing.clear()
            return [self._frame(client, _ua_parameters(self.max_info), UA)]
        if command == DISC & ~0x10:
            was = self.connected
            self.connected = False
            return [self._frame(client, b"", UA if was else DM)]
        if not self.connected:
            return [self._frame(client, b"", DM)]
        if frame.control & 1 == 0:  # I-frame
            self._receive_seq = (self._receive_seq + 1) & 7
            self._incoming.append(frame.info)
            if frame.segmented:
                return [self._frame(client, b"", (self._receive_seq & 7) << 5 | 0x11)]
            info = b"".join(self._incoming)
            self._incoming.clear()
            apdu = info[3:] if info[:3] == LLC_COMMAND else info
            answer = LLC_RESPONSE + self._server.handle(apdu)
            self._outgoing = [
                answer[i : i + self.max_info] for i in range(0, len(answer), self.max_info)
            ]
            return [self._next_segment(client)]
        if frame.control & 0x0F == 0x01 and self._outgoing:  # RR: the client wants more
            return [self._next_segment(client)]
        return []

    def _next_segment(self, client: int) -> bytes:
        chunk = self._outgoing.pop(0)
        control = i_control(self._send_seq, self._receive_seq)
        self._send_seq = (self._send_seq + 1) & 7
        return self._frame(client, chunk, control, segmented=bool(self._outgoing))

    def _frame(self, client: int, info: bytes, control: int, *, segmented: bool = False) -> bytes:
        return encode_frame(
            info,
            dest=client,
            src=self._address,
            control=control,
            segmented=segmented,
            dest_size=1,
            src_size=self._address_size,
        )


def _ua_parameters(max_info: int) -> bytes:
    """UA information field: max info lengths and window sizes (IEC 62056-46 6.4.4.4.3.2)."""
    params = bytes([0x05, 0x01, max_info, 0x06, 0x01, max_info])
    params += bytes([0x07, 0x04]) + (1).to_bytes(4, "big") + bytes([0x08, 0x04])
    params += (1).to_bytes(4, "big")
    return bytes([0x81, 0x80, len(params)]) + params
