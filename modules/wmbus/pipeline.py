"""From a heard telegram to a meter's readings: duplicates, address lookup, decoding. Sans-IO.

Shared by the adapter and ``meter-gateway listen``. Telegrams are told apart by their bytes
without DLL CRCs, so the same telegram through a repeater, a second stick or a receiver that
keeps the CRCs counts once. Keys are looked up by the DLL address and, for meters behind a
radio module, by the long TPL header's address.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.model import Reading
from modules.codecs.errors import FrameError
from modules.codecs.mbus.vif import medium_name
from modules.codecs.records import Decoded
from modules.codecs.wmbus.compact import FormatCache
from modules.codecs.wmbus.layers import LinkHeader, parse_link, parse_tpl, strip_crcs
from modules.codecs.wmbus.telegrams import decode_telegram
from modules.wmbus.receivers import Heard

__all__ = [
    "HeardMeter",
    "MeterEntry",
    "Outcome",
    "Router",
    "entry_facts",
    "meter_time",
    "readings",
]

_LONG_TPL_CI = (0x72, 0x73, 0x6B)
MAX_REMEMBERED_TELEGRAMS = 4096  # a block of flats sends a few per second at most
MAX_HEARD_METERS = 2048
# A meter clock further off than this is wrong (never set, or the battery was changed): the
# receive time is the better timestamp for the engine's profiles.
MAX_METER_CLOCK_SKEW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class MeterEntry:
    """A configured meter: its address, filters, key and the gateway meter it feeds."""

    id: str
    meter: str
    key: bytes | None = field(default=None, repr=False)  # never in a log line
    manufacturer: str | None = None
    version: int | None = None
    device_type: int | None = None

    def matches(self, link: LinkHeader) -> bool:
        """Whether a header with this address is this meter."""
        return (
            link.id == self.id
            and self.manufacturer in (None, link.manufacturer_code)
            and self.version in (None, link.version)
            and self.device_type in (None, link.device_type)
        )


@dataclass(slots=True)
class HeardMeter:
    """One address heard on the air, for ``listen`` and the module's health."""

    manufacturer: str
    id: str
    version: int
    device_type: int
    medium: str
    meter: str | None = None  # the gateway meter, None for an unknown id
    telegrams: int = 0
    duplicates: int = 0
    failures: int = 0
    rssi_dbm: float | None = None
    last_seen: str | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one heard telegram."""

    kind: Literal["duplicate", "unknown", "decoded", "failed"]
    heard: Heard
    link: LinkHeader | None = None
    entry: MeterEntry | None = None
    decoded: Decoded | None = None
    error: FrameError | None = None
    learned: bool = False  # a new compact format was learned (persist the cache)


@dataclass(slots=True)
class Router:
    """Routes heard telegrams to configured meters."""

    entries: Iterable[MeterEntry]
    cache: FormatCache = field(default_factory=FormatCache)
    duplicate_window_s: float = 10.0
    decode_unknown: bool = False  # listen: show what unencrypted strangers say
    heard: dict[str, HeardMeter] = field(default_factory=dict)
    _by_id: dict[str, list[MeterEntry]] = field(default_factory=dict)
    _recent: OrderedDict[bytes, float] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.entries = tuple(self.entries)
        for entry in self.entries:
            self._by_id.setdefault(entry.id, []).append(entry)

    def route(self, heard: Heard, *, now: float, at: datetime) -> Outcome:  # noqa: PLR0911 - one outcome per kind of telegram
        """Decide about one telegram; ``now`` is a monotonic clock, ``at`` the wall clock."""
        try:
            body, _, _ = strip_crcs(heard.telegram, heard.dll_crcs)
            link = parse_link(body)
        except FrameError as err:
            return Outcome("failed", heard, error=err)
        row = self._row(link, at, heard)
        if self._seen(body[1:], now):
            row.duplicates += 1
            return Outcome("duplicate", heard, link)
        row.telegrams += 1
        entry = self._lookup(body, link)
        row.meter = entry.meter if entry else None
        if entry is None and not self.decode_unknown:
            return Outcome("unknown", heard, link)
        before = self._cache_mark()
        try:
            decoded = decode_telegram(
                heard.telegram,
                key=entry.key if entry else None,
                cache=self.cache,
                dll_crcs=heard.dll_crcs,
            )
        except FrameError as err:
            if entry is None:
                return Outcome("unknown", heard, link, error=err)
            row.failures += 1
            row.last_error = err.code
            return Outcome("failed", heard, link, entry, error=err)
        row.last_error = None
        learned = self._cache_mark() != before
        if entry is None:
            return Outcome("unknown", heard, link, decoded=decoded, learned=learned)
        return Outcome("decoded", heard, link, entry, decoded=decoded, learned=learned)

    def heard_json(self) -> bytes:
        """The heard table, for the store (``listen --heard`` reads it back)."""
        return json.dumps([asdict(row) for row in self.heard.values()]).encode()

    def restore_heard(self, data: bytes) -> None:
        """Continue counting from a saved heard table (unreadable data is ignored)."""
        try:
            rows = [HeardMeter(**row) for row in json.loads(data)]
        except (ValueError, TypeError):
            return
        for row in rows[-MAX_HEARD_METERS:]:
            self.heard[f"{row.manufacturer} {row.id}"] = row

    def _seen(self, key: bytes, now: float) -> bool:
        recent = self._recent
        while recent:
            oldest, stamp = next(iter(recent.items()))
            if now - stamp < self.duplicate_window_s and len(recent) < MAX_REMEMBERED_TELEGRAMS:
                break
            del recent[oldest]
        if key in recent:
            return True
        recent[key] = now
        return False

    def _lookup(self, body: bytes, link: LinkHeader) -> MeterEntry | None:
        for entry in self._by_id.get(link.id, ()):
            if entry.matches(link):
                return entry
        if len(body) > 10 and body[10] in _LONG_TPL_CI:  # noqa: PLR2004 - the CI field of a long header
            try:
                tpl = parse_tpl(body, 10)
            except FrameError:
                return None
            if tpl.manufacturer is not None and tpl.address is not None:
                own = LinkHeader(link.length, link.c, tpl.manufacturer, tpl.address)
                for entry in self._by_id.get(own.id, ()):
                    if entry.matches(own):
                        return entry
        return None

    def _row(self, link: LinkHeader, at: datetime, heard: Heard) -> HeardMeter:
        name = f"{link.manufacturer_code} {link.id}"
        row = self.heard.get(name)
        if row is None:
            if len(self.heard) >= MAX_HEARD_METERS:
                del self.heard[next(iter(self.heard))]
            row = self.heard[name] = HeardMeter(
                link.manufacturer_code,
                link.id,
                link.version,
                link.device_type,
                medium_name(link.device_type),
            )
        row.last_seen = at.isoformat(timespec="seconds")
        if heard.rssi_dbm is not None:
            row.rssi_dbm = heard.rssi_dbm
        return row

    def _cache_mark(self) -> tuple[int, bytes]:
        learned = self.cache.learned()
        return len(learned), learned[-1] if learned else b""


def readings(decoded: Decoded) -> tuple[Reading, ...]:
    """Present values as Readings: OBIS where the codec found one, else the record's name."""
    out: dict[str, Reading] = {}
    for record in decoded.records:
        if record.value is None or record.storage != 0:
            continue  # historic values would overwrite the live registers
        code = record.obis
        if code is None:
            if record.function != "instantaneous" or record.subunit:
                continue
            code = record.name + (f"_t{record.tariff}" if record.tariff else "")
        out.setdefault(code, Reading(code, record.value, record.unit))
    return tuple(out.values())


def meter_time(decoded: Decoded, zone: ZoneInfo, received: datetime) -> datetime:
    """The meter's own time of the reading when it sends a plausible one, else ``received``."""
    for record in decoded.records:
        if record.name != "datetime" or record.storage != 0 or not isinstance(record.value, str):
            continue
        try:
            local = datetime.fromisoformat(record.value)
        except ValueError:
            break
        moment = local.replace(tzinfo=zone) if local.tzinfo is None else local
        if abs(moment - received) <= MAX_METER_CLOCK_SKEW:
            return moment.astimezone(received.tzinfo)
        break
    return received


def entry_facts(outcome: Outcome) -> dict[str, Any]:
    """A one-line summary of a telegram for logs and ``listen --json``."""
    link = outcome.link
    facts: dict[str, Any] = {"kind": outcome.kind, "rssi_dbm": outcome.heard.rssi_dbm}
    if link is not None:
        facts.update(
            manufacturer=link.manufacturer_code,
            id=link.id,
            version=link.version,
            type=link.device_type,
            medium=medium_name(link.device_type),
        )
    if outcome.entry is not None:
        facts["meter"] = outcome.entry.meter
    if outcome.error is not None:
        facts["error"] = {"code": outcome.error.code, "message": str(outcome.error)}
    return facts
