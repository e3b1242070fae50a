"""The persistent MQTT outbox: QoS 1 messages wait in SQLite until the broker acknowledged them.

Rows are appended in the caller's store transaction (the register flush, the event log write),
so a message is queued exactly when the fact it reports is durable. They leave the table only
after PUBACK, in id order, so a broker outage or a gateway restart delays messages but never
loses or reorders them. A size bound with a policy keeps a months-long outage from filling the
SD card; whatever the bound drops is counted and logged.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from gateway.model import utc_now
from gateway.store import Store

__all__ = ["STATE_MODULE", "Message", "Outbox", "Policy"]

_LOGGER = logging.getLogger(__name__)

Policy = Literal["drop_oldest", "drop_newest"]

# What one row costs beyond its topic and payload (rowid, header, index entry), so that the
# bound tracks the database's real growth closely enough.
ROW_OVERHEAD_B = 48
# State payloads repeat their keys for every reading and between messages: deflate with a preset
# dictionary of those keys shrinks a 35-register state from ~3.1 kB to ~0.2 kB, which is both
# weeks more outage per 100 MB and 15x fewer SD card writes.
DEFLATE_MIN_B = 200
DEFLATE_LEVEL = 6
# The ``encoding`` column: how a row's payload is stored.
_RAW, _DEFLATE, _DEFLATE_V1 = 0, 1, 2
# FROZEN: rows on disk were deflated with this dictionary. Never edit it; add a _V2 and a new
# column value instead. zlib looks back from the end, so the most common strings come last.
_DICTIONARY_V1 = (
    b"".join(
        b'"%s":{"value":0.0,"unit":%s,"obis":"%s","at":"2025-01-01T00:00:00.000Z"},' % entry
        for entry in (
            (b"energy_import_l1", b'"kWh"', b"1-0:21.8.0"),
            (b"energy_export_l1", b'"kWh"', b"1-0:22.8.0"),
            (b"energy_import_l2", b'"kWh"', b"1-0:41.8.0"),
            (b"energy_export_l2", b'"kWh"', b"1-0:42.8.0"),
            (b"energy_import_l3", b'"kWh"', b"1-0:61.8.0"),
            (b"energy_export_l3", b'"kWh"', b"1-0:62.8.0"),
            (b"power_factor_l1", b"null", b"1-0:33.7.0"),
            (b"power_factor_l2", b"null", b"1-0:53.7.0"),
            (b"power_factor_l3", b"null", b"1-0:73.7.0"),
            (b"apparent_power", b'"VA"', b"1-0:9.7.0"),
            (b"hour_counter", b'"h"', b"0-0:96.8.0"),
            (b"serial_number", b"null", b"0-0:96.1.0"),
            (b"peak_power_t1", b'"W"', b"1-0:1.6.1"),
            (b"peak_power_t2", b'"W"', b"1-0:1.6.2"),
            (b"peak_power_accumulated", b'"W"', b"1-0:1.2.0"),
            (b"peak_power", b'"W"', b"1-0:1.6.0"),
            (b"tariff", b"null", b"0-0:96.14.0"),
            (b"reactive_import_t1", b'"kvarh"', b"1-0:3.8.1"),
            (b"reactive_import_t2", b'"kvarh"', b"1-0:3.8.2"),
            (b"reactive_import_t3", b'"kvarh"', b"1-0:3.8.3"),
            (b"reactive_import_t4", b'"kvarh"', b"1-0:3.8.4"),
            (b"energy_export_t1", b'"kWh"', b"1-0:2.8.1"),
            (b"energy_export_t2", b'"kWh"', b"1-0:2.8.2"),
            (b"energy_import_t1", b'"kWh"', b"1-0:1.8.1"),
            (b"energy_import_t2", b'"kWh"', b"1-0:1.8.2"),
            (b"energy_import_t3", b'"kWh"', b"1-0:1.8.3"),
            (b"energy_import_t4", b'"kWh"', b"1-0:1.8.4"),
            (b"power_export_l1", b'"W"', b"1-0:22.7.0"),
            (b"power_export_l2", b'"W"', b"1-0:42.7.0"),
            (b"power_export_l3", b'"W"', b"1-0:62.7.0"),
            (b"power_import_l1", b'"W"', b"1-0:21.7.0"),
            (b"power_import_l2", b'"W"', b"1-0:41.7.0"),
            (b"power_import_l3", b'"W"', b"1-0:61.7.0"),
            (b"current_l1", b'"A"', b"1-0:31.7.0"),
            (b"current_l2", b'"A"', b"1-0:51.7.0"),
            (b"current_l3", b'"A"', b"1-0:71.7.0"),
            (b"voltage_l1", b'"V"', b"1-0:32.7.0"),
            (b"voltage_l2", b'"V"', b"1-0:52.7.0"),
            (b"voltage_l3", b'"V"', b"1-0:72.7.0"),
            (b"power_factor", b"null", b"1-0:13.7.0"),
            (b"frequency", b'"Hz"', b"1-0:14.7.0"),
            (b"reactive_power_import", b'"var"', b"1-0:3.7.0"),
            (b"reactive_power_export", b'"var"', b"1-0:4.7.0"),
            (b"power_export", b'"W"', b"1-0:2.7.0"),
            (b"power_import", b'"W"', b"1-0:1.7.0"),
            (b"reactive_export", b'"kvarh"', b"1-0:4.8.0"),
            (b"reactive_import", b'"kvarh"', b"1-0:3.8.0"),
            (b"energy_export", b'"kWh"', b"1-0:2.8.0"),
            (b"energy_import", b'"kWh"', b"1-0:1.8.0"),
        )
    )
    + b'{"meter":"main","seq":1,"at":"2025-01-01T00:00:00.000Z","readings":{'
)
# A full outbox drops on every append; one warning per this interval is enough.
DROP_LOG_EVERY_S = 60.0
# SQLite's default limit on host parameters is far above this; chunks keep statements small.
_CHUNK = 500
# The MQTT bridge's rows in module_state ("@" cannot start a module name).
STATE_MODULE = "@mqtt"
_DROPPED_KEY = "outbox_dropped"
_SIZE_SQL = f"length(payload) + length(CAST(topic AS BLOB)) + {ROW_OVERHEAD_B}"


@dataclass(frozen=True, slots=True)
class Message:
    """One queued publication."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    """An ordered, bounded, durable queue of MQTT messages inside the gateway store."""

    def __init__(
        self,
        store: Store,
        *,
        max_bytes: int,
        policy: Policy = "drop_oldest",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self.max_bytes = max_bytes
        self.policy: Policy = policy
        self._clock = clock
        self._acked: set[int] = set()
        self._drops_unlogged = 0
        self._last_drop_log = float("-inf")
        with store.transaction() as db:
            count, size = db.execute(
                f"SELECT count(*), coalesce(sum({_SIZE_SQL}), 0) FROM outbox"
            ).fetchone()
        self.depth: int = int(count)
        self.bytes: int = int(size)
        # Rows appended (or deleted) inside a transaction that then fails are gone (or back).
        store.on_rollback(self.resync)
        raw = store.get_state(STATE_MODULE, _DROPPED_KEY)
        self.dropped: int = int(raw.decode()) if raw else 0
        if self.depth:
            _LOGGER.info(
                "outbox holds %d messages (%.1f MB) from before; they go out first",
                self.depth,
                self.bytes / 1e6,
            )

    def append(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> int | None:
        """Queue a message (joining any open store transaction); its id, None if dropped."""
        stored, encoding = _pack(payload)
        size = len(stored) + len(topic.encode()) + ROW_OVERHEAD_B
        with self._store.transaction() as db:
            if self.bytes + size > self.max_bytes and not self._make_room(size):
                self._count_drops(1, "newest")
                return None
            cursor = db.execute(
                "INSERT INTO outbox (topic, payload, encoding, qos, retain, created)"
                " VALUES (?,?,?,?,?,?)",
                (topic, stored, encoding, qos, int(retain), _time_text(self._clock())),
            )
        self.depth += 1
        self.bytes += size
        return int(cursor.lastrowid or 0)

    def peek(self, after_id: int = 0, limit: int = 100) -> list[Message]:
        """The oldest messages with an id above ``after_id``, in order."""
        with self._store.transaction() as db:
            rows = db.execute(
                "SELECT id, topic, payload, encoding, qos, retain FROM outbox"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [
            Message(row_id, topic, _unpack(data, encoding), qos, bool(r))
            for row_id, topic, data, encoding, qos, r in rows
        ]

    def ack(self, message_id: int) -> None:
        """The broker has the message; it is deleted at the next ``commit_acks``."""
        self._acked.add(message_id)

    @property
    def waiting(self) -> int:
        """Messages the broker has not acknowledged yet."""
        return self.depth - len(self._acked)

    @property
    def pending_acks(self) -> int:
        """Acknowledged messages not yet deleted from disk."""
        return len(self._acked)

    def commit_acks(self) -> int:
        """Delete acknowledged messages (joining any open transaction); returns how many."""
        if not self._acked:
            return 0
        acked, self._acked = sorted(self._acked), set()
        deleted = freed = 0
        with self._store.transaction() as db:
            for start in range(0, len(acked), _CHUNK):
                chunk = acked[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                sizes = db.execute(
                    f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING {_SIZE_SQL}", chunk
                ).fetchall()
                deleted += len(sizes)
                freed += sum(size for (size,) in sizes)
        self.depth -= deleted
        self.bytes -= freed
        if self.depth <= 0:
            self.depth = self.bytes = 0
        return deleted

    def oldest(self) -> datetime | None:
        """When the oldest message still waiting for the broker was queued."""
        with self._store.transaction() as db:
            # Acknowledged rows awaiting deletion are (in practice) the oldest ones.
            row = db.execute(
                "SELECT created FROM outbox WHERE id > ? ORDER BY id LIMIT 1",
                (max(self._acked, default=0),),
            ).fetchone()
        return _time_parse(row[0]) if row else None

    def resync(self) -> None:
        """Recount depth and size from disk (after a rolled-back transaction)."""
        with self._store.transaction() as db:
            count, size = db.execute(
                f"SELECT count(*), coalesce(sum({_SIZE_SQL}), 0) FROM outbox"
            ).fetchone()
        self.depth, self.bytes = int(count), int(size)

    def _make_room(self, size: int) -> bool:
        """Apply the policy so ``size`` more bytes fit; False if the new message must go."""
        if self.policy == "drop_newest" or size > self.max_bytes:
            return False
        need = self.bytes + size - self.max_bytes
        freed = dropped = 0
        last_id = None
        with self._store.transaction() as db:
            for row_id, row_size in db.execute(f"SELECT id, {_SIZE_SQL} FROM outbox ORDER BY id"):
                freed += int(row_size)
                dropped += 1
                last_id = row_id
                if freed >= need:
                    break
            if last_id is not None:
                db.execute("DELETE FROM outbox WHERE id <= ?", (last_id,))
                self._acked = {i for i in self._acked if i > last_id}
        self.depth -= dropped
        self.bytes -= freed
        self._count_drops(dropped, "oldest")
        return True

    def _count_drops(self, count: int, which: str) -> None:
        if not count:
            return
        self.dropped += count
        self._store.put_state(STATE_MODULE, _DROPPED_KEY, str(self.dropped).encode())
        self._drops_unlogged += count
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_EVERY_S:
            _LOGGER.warning(
                "MQTT outbox full (%.1f of %.1f MB): dropped %d %s message(s), %d in total",
                self.bytes / 1e6,
                self.max_bytes / 1e6,
                self._drops_unlogged,
                which,
                self.dropped,
            )
            self._drops_unlogged = 0
            self._last_drop_log = now


def _pack(payload: bytes) -> tuple[bytes, int]:
    if len(payload) < DEFLATE_MIN_B:
        return payload, _RAW
    deflater = zlib.compressobj(DEFLATE_LEVEL, zdict=_DICTIONARY_V1)
    packed = deflater.compress(payload) + deflater.flush()
    return (packed, _DEFLATE_V1) if len(packed) < len(payload) else (payload, _RAW)


def _unpack(data: bytes, encoding: int) -> bytes:
    if encoding == _RAW:
        return bytes(data)
    if encoding == _DEFLATE:
        return zlib.decompress(data)
    if encoding == _DEFLATE_V1:
        inflater = zlib.decompressobj(zdict=_DICTIONARY_V1)
        return inflater.decompress(data) + inflater.flush()
    raise ValueError(f"outbox row encoded as {encoding}, unknown to this version")


def _time_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time_parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
