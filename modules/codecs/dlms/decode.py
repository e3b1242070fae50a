"""DLMS/COSEM decoder (sans-IO): HAN pushes over HDLC, the TCP wrapper, wired M-Bus or bare APDUs.

The transport layers live in ``dlms.hdlc``, A-XDR in ``dlms.axdr``, ciphering in
``dlms.security``, APDUs in ``dlms.apdu`` and the vendor push lists in ``dlms.lists``. This
module peels an input down to its APDU, keeps segmented frames and block transfers across
calls, and turns the result into ``Decoded``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from modules.codecs.dlms.apdu import (
    AARE,
    ACTION_RESPONSE,
    DATA_NOTIFICATION,
    EVENT_NOTIFICATION,
    EXCEPTION_RESPONSE,
    GENERAL_BLOCK_TRANSFER,
    GET_RESPONSE,
    SET_RESPONSE,
    BlockAssembler,
    decode_aare,
    decode_action_response,
    decode_event_notification,
    decode_exception_response,
    decode_get_response,
    decode_set_response,
    parse_block,
    parse_data_notification,
)
from modules.codecs.dlms.axdr import Data
from modules.codecs.dlms.hdlc import (
    FLAG,
    LLC_COMMAND,
    LLC_RESPONSE,
    MBUS_START,
    WRAPPER_VERSION,
    SegmentAssembler,
    find_frame_start,
    parse_frame,
    parse_mbus_segment,
    parse_wrapper,
    strip_llc,
)
from modules.codecs.dlms.lists import interpret
from modules.codecs.dlms.obis import record_name
from modules.codecs.dlms.security import (
    GENERAL_CIPHERING,
    GENERAL_DED_CIPHERING,
    GENERAL_GLO_CIPHERING,
    SERVICE_CIPHERING,
    decipher,
    parse_ciphered,
)
from modules.codecs.errors import DecryptionError, FrameError, IncompleteFrame, UnknownFormat
from modules.codecs.records import Decoded, Record

__all__ = ["DlmsDecoder"]

# APDU tags a deciphered payload may start with; anything else means the key was wrong.
_PLAIN_TAGS = frozenset(
    {
        DATA_NOTIFICATION,
        GENERAL_BLOCK_TRANSFER,
        GET_RESPONSE,
        ACTION_RESPONSE,
        AARE,
        0xC0,
        0xC1,
        0xC2,
        0xC3,
        0xC5,
        0x60,
        0x62,
        0x63,
        EXCEPTION_RESPONSE,
    }
)
_CIPHERED_TAGS = frozenset(
    {GENERAL_GLO_CIPHERING, GENERAL_DED_CIPHERING, GENERAL_CIPHERING, *SERVICE_CIPHERING}
)
_VALUE_ATTRIBUTE = 2  # Blue Book: attribute 2 of data, register and extended register is the value
_MAX_NESTING = 4  # ciphering inside block transfer inside ciphering is as deep as real pushes go


class DlmsDecoder:
    """Decodes one DLMS input per call; segments and blocks carry over to the next call."""

    input_kind: ClassVar[Literal["hex", "text"]] = "hex"

    def __init__(
        self, *, kamstrup_energy_wh: bool | None = None, system_title: bytes | None = None
    ) -> None:
        self._segments = SegmentAssembler()
        self._blocks = BlockAssembler()
        self._mbus: list[bytes] = []
        # None: decide from the meter type number (dlms_lists); a meter setting overrides it.
        self._kamstrup_energy_wh = kamstrup_energy_wh
        # The server's system title for glo-/ded- APDUs, which do not carry it: given, or
        # learned from the last AARE that named one (a capture of a whole ciphered session).
        self._system_title = system_title

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        """Decode an HDLC frame (or several), an M-Bus segment set, a wrapper PDU or an APDU."""
        if not data:
            raise IncompleteFrame("no bytes to decode", offset=0)
        decoded = Decoded("dlms")
        apdus = self._unwrap(data, decoded.frame)
        if not apdus:
            decoded.frame["complete"] = not self._pending
            return decoded
        for apdu, base in apdus:
            self._apdu(apdu, base, decoded, key=key, auth_key=auth_key, depth=0)
        decoded.frame.setdefault("complete", not self._pending)
        return decoded

    @property
    def _pending(self) -> bool:
        return self._segments.pending or self._blocks.pending or bool(self._mbus)

    # ------------------------------------------------------------ transports

    def _unwrap(self, data: bytes, frame: dict[str, Any]) -> list[tuple[bytes, int]]:
        first = data[0]
        if first == FLAG or (first >> 4 == 0xA and _valid_hdlc(data)):
            return self._hdlc(data, frame)
        if first == MBUS_START and len(data) > 3 and data[3] == MBUS_START:
            return self._mbus_frames(data, frame)
        if len(data) >= 8 and int.from_bytes(data[:2], "big") == WRAPPER_VERSION:
            wrapper = parse_wrapper(data)
            frame["transport"] = "wrapper"
            frame["wrapper"] = {
                "version": wrapper.version,
                "source_wport": wrapper.source,
                "destination_wport": wrapper.destination,
                "length": wrapper.length,
            }
            return [(wrapper.apdu, 8)]
        if data[:3] in (LLC_COMMAND, LLC_RESPONSE):
            frame["transport"] = "llc"
            frame["llc"] = data[:3].hex()
            return [(data[3:], 3)]
        start = find_frame_start(data) if first != FLAG and FLAG in data else None
        if start is not None:
            frame["skipped_bytes"] = start
            frame["skipped"] = [{"offset": 0, "bytes": start, "reason": "bad_frame"}]
            return self._hdlc(data[start:], frame, base=start)
        frame["transport"] = "apdu"
        return [(data, 0)]

    def _hdlc(self, data: bytes, frame: dict[str, Any], base: int = 0) -> list[tuple[bytes, int]]:
        frame["transport"] = "hdlc"
        apdus: list[tuple[bytes, int]] = []
        pos = 0
        count = 0
        while pos < len(data):
            if data[pos] == FLAG and (pos + 1 == len(data) or data[pos + 1] == FLAG):
                pos += 1  # inter-frame fill or a lone closing flag
                continue
            try:
                hdlc = parse_frame(data, pos)
            except FrameError as err:
                # A capture is a stream, not a frame: noise, a frame cut short, or the tail of
                # one we joined late. Skip to the next flag that opens a good frame and say so;
                # fail only when no frame in the input decodes at all.
                resume = _next_frame(data, pos + 1)
                if count == 0 and resume is None:
                    if err.offset is not None:
                        err.offset += base
                    raise
                end = len(data) if resume is None else resume
                skipped = frame.setdefault("skipped", [])
                skipped.append({"offset": base + pos, "bytes": end - pos, "reason": err.code})
                frame["skipped_bytes"] = frame.get("skipped_bytes", 0) + end - pos
                pos = end
                continue
            count += 1
            if count == 1:
                frame["hdlc"] = hdlc.facts()
            else:
                frame.setdefault("hdlc_more", []).append(hdlc.facts())
            pos += hdlc.size
            if hdlc.info or self._segments.pending:
                info = self._segments.feed(hdlc)
                if info is not None:
                    apdu, llc = strip_llc(info)
                    if llc:
                        frame["llc"] = llc
                    apdus.append((apdu, base + pos - len(info)))
        frame["hdlc_frames"] = count
        return apdus

    def _mbus_frames(self, data: bytes, frame: dict[str, Any]) -> list[tuple[bytes, int]]:
        frame["transport"] = "mbus"
        segments = []
        pos = 0
        apdus: list[tuple[bytes, int]] = []
        while pos < len(data):
            segment = parse_mbus_segment(data, pos)
            segments.append(
                {
                    "c": f"0x{segment.control:02x}",
                    "a": f"0x{segment.address:02x}",
                    "ci": f"0x{segment.ci:02x}",
                    "stsap": segment.stsap,
                    "dtsap": segment.dtsap,
                    "data_len": len(segment.data),
                }
            )
            pos += segment.size
            if segment.ci & 0x0F == 0:
                self._mbus.clear()
            self._mbus.append(segment.data)
            if segment.last or segment.ci == 0x10:
                apdus.append((b"".join(self._mbus), 0))
                self._mbus.clear()
        frame["mbus_segments"] = segments
        return apdus

    # ------------------------------------------------------------ APDUs

    def _apdu(
        self,
        apdu: bytes,
        base: int,
        decoded: Decoded,
        *,
        key: bytes | None,
        auth_key: bytes | None,
        depth: int,
    ) -> None:
        if depth > _MAX_NESTING:
            raise FrameError("APDUs nested too deeply", offset=base)
        if not apdu:
            return
        tag = apdu[0]
        frame = decoded.frame
        if tag == DATA_NOTIFICATION:
            self._notification(apdu, base, decoded)
        elif tag == GENERAL_BLOCK_TRANSFER:
            block = parse_block(apdu, base=base)
            frame["block_transfer"] = {
                "block": block.number,
                "last": block.last,
                "streaming": block.streaming,
                "ack": block.ack,
            }
            whole = self._blocks.feed(block)
            if whole is not None:
                self._apdu(whole, 0, decoded, key=key, auth_key=auth_key, depth=depth + 1)
            rest = apdu[block.size :]
            if rest:
                self._apdu(
                    rest, base + block.size, decoded, key=key, auth_key=auth_key, depth=depth + 1
                )
        elif tag in _CIPHERED_TAGS:
            ciphered, _size = parse_ciphered(apdu, system_title=self._system_title)
            frame.update(ciphered.facts())
            if ciphered.manufacturer_code:
                decoded.meter.setdefault("manufacturer", ciphered.manufacturer_code)
            plaintext, verified = decipher(ciphered, key=key, auth_key=auth_key)
            frame["tag_verified"] = verified
            expected = ciphered.plain_tag
            if (
                not plaintext
                or plaintext[0] not in _PLAIN_TAGS
                or (expected is not None and plaintext[0] != expected)
            ):
                raise DecryptionError(
                    f"deciphered {ciphered.name} is not a DLMS APDU"
                    + ("" if expected is None else f" of tag 0x{expected:02x}")
                    + ": wrong encryption key",
                    code="wrong_key",
                )
            self._apdu(plaintext, 0, decoded, key=key, auth_key=auth_key, depth=depth + 1)
        elif tag == GET_RESPONSE:
            response = decode_get_response(apdu)
            frame["apdu"] = "get-response"
            frame["invoke_id"] = response.invoke_id
            if response.block_number is not None:
                frame["block_number"] = response.block_number
                frame["last_block"] = response.last_block
            for index, result in enumerate(response.results):
                if isinstance(result, Data):
                    decoded.records.extend(_records(result, decoded, index))
                else:
                    frame.setdefault("data_access_results", []).append(result)
        elif tag == AARE:
            association = decode_aare(apdu)
            frame["apdu"] = "aare"
            frame["association"] = {
                "accepted": association.accepted,
                "result": association.result,
                "diagnostic": association.diagnostic,
                "conformance": association.conformance,
                "max_pdu": association.max_pdu,
                "system_title": association.system_title.hex()
                if association.system_title
                else None,
            }
            if association.system_title:
                self._system_title = association.system_title
        elif tag == ACTION_RESPONSE:
            action = decode_action_response(apdu)
            frame["apdu"] = "action-response"
            frame["invoke_id"] = action.invoke_id
            frame["action_result"] = action.result
            if isinstance(action.data, Data):
                decoded.records.extend(_records(action.data, decoded, 0))
        elif tag == SET_RESPONSE:
            written = decode_set_response(apdu)
            frame["apdu"] = "set-response"
            frame["invoke_id"] = written.invoke_id
            frame["data_access_results"] = list(written.results)
            if written.block_number is not None:
                frame["block_number"] = written.block_number
        elif tag == EVENT_NOTIFICATION:
            event = decode_event_notification(apdu, base=base)
            frame["apdu"] = "event-notification"
            frame["attribute"] = f"{event.class_id}/{event.obis}/{event.attribute}"
            if event.time is not None and event.time.iso():
                decoded.meter.setdefault("time", event.time.iso())
            records = _records(event.value, decoded, 0)
            if event.attribute == _VALUE_ATTRIBUTE and len(records) == 1 and not records[0].obis:
                # The value's logical name is in the descriptor; its scaler-unit (attribute 3)
                # is not sent, so the unit stays unknown.
                only = records[0]
                records = [
                    Record(record_name(event.obis), only.value, None, event.obis, raw=only.raw)
                ]
            decoded.records.extend(records)
        elif tag == EXCEPTION_RESPONSE:
            frame["apdu"] = "exception-response"
            frame["exception"] = decode_exception_response(apdu).facts()
        elif depth == 0 and frame.get("transport") in ("hdlc", "mbus", "wrapper"):
            # A checked frame whose payload is no APDU we know: report the frame, not an error.
            frame["apdu"] = f"0x{tag:02x}"
            frame["payload"] = apdu.hex()
        else:
            raise UnknownFormat(f"APDU tag 0x{tag:02x} is not supported", offset=base)

    def _notification(self, apdu: bytes, base: int, decoded: Decoded) -> None:
        notification = parse_data_notification(apdu, base=base)
        decoded.frame.update(notification.facts())
        decoded.frame["invoke_id"] = notification.invoke_id
        result = interpret(
            notification.body,
            system_title=bytes.fromhex(decoded.frame.get("system_title", "")),
            kamstrup_energy_wh=self._kamstrup_energy_wh,
        )
        decoded.frame["list_layout"] = result.layout
        if result.placement is not None:
            decoded.frame["layout"] = result.placement
        decoded.records.extend(result.records)
        decoded.meter.update(result.meter)
        stamp = notification.date_time.iso() if notification.date_time else None
        if stamp:
            decoded.meter.setdefault("time", stamp)


def _records(data: Data, decoded: Decoded, index: int) -> list[Record]:
    result = interpret(data, push=False)
    decoded.meter.update(result.meter)
    return [
        Record(r.name, r.value, r.unit, r.obis, raw={**r.raw, "result": index})
        for r in result.records
    ]


def _next_frame(data: bytes, start: int) -> int | None:
    """The position of the next flag at or after ``start`` that opens a frame whose checks hold."""
    pos = data.find(FLAG, start)
    while pos != -1:
        try:
            parse_frame(data, pos)
        except FrameError:
            pos = data.find(FLAG, pos + 1)
            continue
        return pos
    return None


def _valid_hdlc(data: bytes) -> bool:
    try:
        parse_frame(data, 0)
    except FrameError:
        return False
    return True
