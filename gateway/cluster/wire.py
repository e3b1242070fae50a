"""What travels between receivers, decode workers and engines: topics and payloads. Sans-IO.

Raw frames are compact binary, not JSON: the frame is binary already (hex would double it),
a block of flats sends thousands of them an hour through the broker and every receiver's
outbox, and a fixed 11-byte header is read without a parser. The receiver is the topic's
last two levels (``<gateway>/<module>``), so it is not repeated in the payload::

    byte 0      format version (1)
    bytes 1-8   receive time: signed 64-bit big-endian microseconds since 1970-01-01 UTC
    bytes 9-10  RSSI: signed 16-bit big-endian tenths of a dBm; -32768 when not known
    bytes 11-   the frame exactly as the receiver delivered it

Decoded samples are JSON (a msgspec Struct): engines, people and other tools read them, they
are per meter and few, and their readings keep decimal values exact.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from gateway.errors import GatewayError
from gateway.model import RawFrame, Reading

__all__ = [
    "RAW_FORMAT",
    "DecodedSample",
    "WireError",
    "decode_sample",
    "encode_sample",
    "frame_digest",
    "raw_filter",
    "raw_payload",
    "raw_topic",
    "read_raw",
    "receiver_of",
    "sample_topic",
]

RAW_FORMAT = 1
_HEADER = struct.Struct(">bqh")
_NO_RSSI = -32768
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Topic levels right under the base topic that are not a gateway's name (config refuses a
# gateway called so): raw frames and decoded samples are shared by the whole group.
RAW_LEVEL = "raw"
SAMPLES_LEVEL = "samples"


class WireError(GatewayError):
    """A message on a cluster topic that is not what the topic promises."""


def raw_topic(base: str, protocol: str, gateway: str, module: str) -> str:
    """Where a receiver publishes the frames of one module."""
    return f"{base}/{RAW_LEVEL}/{protocol}/{gateway}/{module}"


def raw_filter(base: str, protocol: str, group: str | None = None) -> str:
    """Every receiver's frames of ``protocol``; with ``group``, as an MQTT 5 shared
    subscription (each message goes to one member of the group)."""
    topic = f"{base}/{RAW_LEVEL}/{protocol}/#"
    return f"$share/{group}/{topic}" if group else topic


def receiver_of(base: str, topic: str) -> tuple[str, str]:
    """``(protocol, "<gateway>/<module>")`` of a raw topic; WireError for any other topic."""
    prefix = f"{base}/{RAW_LEVEL}/"
    parts = topic[len(prefix) :].split("/") if topic.startswith(prefix) else []
    if len(parts) != 3 or not all(parts):  # noqa: PLR2004 - <protocol>/<gateway>/<module>
        raise WireError(f"{topic!r} is not {prefix}<protocol>/<gateway>/<module>")
    return parts[0], f"{parts[1]}/{parts[2]}"


def sample_topic(base: str, meter: str) -> str:
    """Where decoded samples of one meter go (the engine that owns it subscribes)."""
    return f"{base}/{SAMPLES_LEVEL}/{meter}"


def raw_payload(frame: RawFrame) -> bytes:
    """A frame as a receiver publishes it (format above)."""
    micros = (frame.at - _EPOCH) // timedelta(microseconds=1)
    rssi = _NO_RSSI if frame.rssi is None else max(-32767, min(32767, round(frame.rssi * 10)))
    return _HEADER.pack(RAW_FORMAT, micros, rssi) + frame.data


def read_raw(payload: bytes) -> tuple[datetime, float | None, bytes]:
    """``(receive time, RSSI in dBm or None, frame)`` of a raw payload; WireError if broken."""
    if len(payload) <= _HEADER.size:
        raise WireError(f"raw payload of {len(payload)} bytes: shorter than its header + 1")
    version, micros, rssi = _HEADER.unpack_from(payload)
    if version != RAW_FORMAT:
        raise WireError(f"raw payload format {version}; this gateway reads {RAW_FORMAT}")
    try:
        at = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise WireError(f"raw payload receive time {micros} us is out of range") from None
    return at, None if rssi == _NO_RSSI else rssi / 10, payload[_HEADER.size :]


def frame_digest(body: bytes) -> str:
    """A short hash that tells telegrams apart (64 bits: collisions need ~4e9 in a window)."""
    return hashlib.blake2b(body, digest_size=8).hexdigest()


class DecodedSample(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``<base>/samples/<meter>``: one telegram decoded by one worker.

    ``address`` (manufacturer and radio id), ``access`` (the telegram's access number) and
    ``digest`` (a hash of the telegram without its CRCs) say which telegram it was: copies
    heard by several receivers carry the same three and are counted once by the engine.
    ``readings`` are ``[obis, value, unit]`` with values as exact JSON numbers or text.
    """

    meter: str
    protocol: str
    address: str
    access: int | None
    digest: str
    at: datetime  # the reading's time: the meter's clock where it is plausible, else receive
    received: datetime
    receiver: str  # <gateway>/<module>
    rssi: float | None
    worker: str  # <gateway>/<module> of the decode worker
    readings: tuple[tuple[str, Any, str | None], ...]
    v: int = 1

    @property
    def key(self) -> tuple[str, str, int | None, str]:
        """What makes two copies one telegram: meter, address, access number, payload hash."""
        return self.meter, self.address, self.access, self.digest

    def values(self) -> tuple[Reading, ...]:
        """The readings as the engine takes them."""
        return tuple(Reading(code, value, unit) for code, value, unit in self.readings)


_ENCODER = msgspec.json.Encoder(decimal_format="number")
# Numbers with a fraction come back as Decimal: a register is exact on every hop.
_DECODER = msgspec.json.Decoder(DecodedSample, float_hook=Decimal)


def encode_sample(sample: DecodedSample) -> bytes:
    """The JSON a worker publishes."""
    return _ENCODER.encode(sample)


def decode_sample(payload: bytes) -> DecodedSample:
    """A decoded sample from its JSON; WireError names the field that is wrong."""
    try:
        return _DECODER.decode(payload)
    except msgspec.DecodeError as err:
        raise WireError(f"not a decoded sample: {err}") from None
