"""The MQTT outbox: messages wait in memory while the broker takes them, on disk when it does not.

A message is appended to memory and goes out from there at once; the SD card never sees it when
the broker acknowledges it in time. It is written to SQLite ("spilled") only when it has waited
longer than ``spill_after_s`` for its PUBACK (the broker is away or falls behind), when memory
holds more than ``MEMORY_MAX_B``, or when the gateway stops. A spill writes everything memory
holds in one transaction, deflated, with each message's own id and time, so it costs about one
write per ``spill_after_s`` of outage, not one per message.

Memory and disk share one id sequence and disk only ever receives the oldest messages, so every
row on disk is older than every message in memory: the backlog goes out first, after a
reconnect as after a restart. Rows leave the table only after PUBACK, in id order. A kill -9
loses what memory held (at most ``spill_after_s`` of messages the broker had not acknowledged),
never a spilled row. A size bound with a policy keeps a months-long outage from filling the SD
card; whatever the bound drops is counted and logged.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Literal

import msgspec

from gateway.model import utc_now
from gateway.store import Store

__all__ = ["STATE_MODULE", "Message", "Outbox", "Policy"]

_LOGGER = logging.getLogger(__name__)

Policy = Literal["drop_oldest", "drop_newest"]
# The Outbox's ``bytes`` property shadows the builtin inside the class body.
_Bytes = bytes

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
# A full outbox drops on every spill; one warning per this interval is enough.
DROP_LOG_EVERY_S = 60.0
# SQLite's default limit on host parameters is far above this; chunks keep statements small.
_CHUNK = 500
# The MQTT bridge's rows in module_state ("@" cannot start a module name).
STATE_MODULE = "@mqtt"
_DROPPED_KEY = "outbox_dropped"
_SIZE_SQL = f"length(payload) + length(CAST(topic AS BLOB)) + {ROW_OVERHEAD_B}"
# Unacknowledged messages held in memory beyond this go to disk at once, whatever their age:
# a fast outage (a hundred meters, per-second states) must not grow the process without bound.
MEMORY_MAX_B = 8_000_000


# Structs, not frozen dataclasses: two are made for every message queued, and a Struct is
# built in C (about 0.14 against 1.26 us here). Neither holds a container (no cycle to collect).
class Message(msgspec.Struct, frozen=True, gc=False):
    """One queued publication."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class _Held(msgspec.Struct, frozen=True, gc=False):
    """A message in memory, with what a spill needs to write it as it was queued."""

    message: Message
    created: datetime
    queued_at: float  # monotonic
    size: int


class Outbox:
    """An ordered, bounded queue of MQTT messages: memory first, the gateway store when needed."""

    def __init__(  # noqa: PLR0913 - keyword-only options
        self,
        store: Store,
        *,
        max_bytes: int,
        policy: Policy = "drop_oldest",
        spill_after_s: float = 30.0,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.max_bytes = max_bytes
        self.policy: Policy = policy
        self.spill_after_s = spill_after_s
        self._clock = clock
        self._monotonic = monotonic
        self._acked: set[int] = set()
        # Stored sizes of the disk rows handed out by ``peek`` and of those acknowledged since,
        # so that the bytes reported as waiting leave out rows only waiting to be deleted.
        self._peeked_sizes: dict[int, int] = {}
        self._acked_sizes: dict[int, int] = {}
        self._memory: dict[int, _Held] = {}
        self._memory_bytes = 0
        self._drops_unlogged = 0
        self._last_drop_log = float("-inf")
        self.spilled = 0
        self._disk_depth = 0
        self._disk_bytes = 0
        self.resync()
        with store.transaction() as db:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        # Continue AUTOINCREMENT's sequence: an id is never reused, even after a restart.
        self._next_id = int(row[0]) + 1 if row else 1
        # Rows written (or deleted) inside a transaction that then fails are gone (or back).
        store.on_rollback(self.resync)
        raw = store.get_state(STATE_MODULE, _DROPPED_KEY)
        self.dropped: int = int(raw.decode()) if raw else 0
        if self._disk_depth:
            _LOGGER.info(
                "outbox holds %d messages (%.1f MB) from before; they go out first",
                self._disk_depth,
                self._disk_bytes / 1e6,
            )

    @property
    def depth(self) -> int:
        """Messages queued, in memory and on disk (acknowledged ones not yet deleted included)."""
        return self._disk_depth + len(self._memory)

    @property
    def bytes(self) -> int:
        """Bytes queued: rows on disk as stored, messages in memory as they will be stored."""
        return self._disk_bytes + self._memory_bytes

    @property
    def on_disk(self) -> int:
        """Rows in the table (spilled and not yet acknowledged and deleted)."""
        return self._disk_depth

    def append(
        self, topic: str, payload: _Bytes, *, qos: int = 1, retain: bool = False
    ) -> int | None:
        """Queue a message in memory; its id (None is kept for callers of the size bound)."""
        message_id = self._next_id
        self._next_id += 1
        size = len(payload) + len(topic.encode()) + ROW_OVERHEAD_B
        message = Message(message_id, topic, payload, qos, retain)
        self._memory[message_id] = _Held(message, self._clock(), self._monotonic(), size)
        self._memory_bytes += size
        return message_id

    def peek(self, after_id: int = 0, limit: int = 100) -> list[Message]:
        """The oldest messages with an id above ``after_id``, in order: disk, then memory."""
        found: list[Message] = []
        if self._disk_depth:
            with self._store.transaction() as db:
                rows = db.execute(
                    "SELECT id, topic, payload, encoding, qos, retain FROM outbox"
                    " WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit),
                ).fetchall()
            found = [
                Message(row_id, topic, _unpack(data, encoding), qos, bool(r))
                for row_id, topic, data, encoding, qos, r in rows
            ]
            for row_id, topic, data, *_rest in rows:
                self._peeked_sizes[row_id] = len(data) + len(topic.encode()) + ROW_OVERHEAD_B
        for message in self._in_memory_after(after_id):
            if len(found) >= limit:
                break
            found.append(message)
        return found

    def ack(self, message_id: int) -> None:
        """The broker has the message: gone from memory now, from disk at ``commit_acks``."""
        held = self._memory.pop(message_id, None)
        if held is not None:
            self._memory_bytes -= held.size
            return
        self._acked.add(message_id)
        self._acked_sizes[message_id] = self._peeked_sizes.pop(message_id, 0)

    @property
    def waiting(self) -> int:
        """Messages the broker has not acknowledged yet."""
        return self.depth - len(self._acked)

    @property
    def waiting_bytes(self) -> int:
        """Bytes of the messages in ``waiting`` (``bytes`` also counts acknowledged rows that
        are only waiting to be deleted)."""
        return self.bytes - sum(self._acked_sizes.values())

    def backlog(self, min_age_s: float) -> tuple[int, int]:
        """(messages, bytes) waiting, without those queued less than ``min_age_s`` ago: a
        health figure that does not flip between 0 and 1 with every message in flight."""
        now = self._monotonic()
        fresh = [h.size for h in self._memory.values() if now - h.queued_at < min_age_s]
        return self.waiting - len(fresh), self.waiting_bytes - sum(fresh)

    @property
    def pending_acks(self) -> int:
        """Acknowledged messages not yet deleted from disk."""
        return len(self._acked)

    def commit_acks(self) -> int:
        """Delete acknowledged rows (joining any open transaction); returns how many."""
        if not self._acked:
            return 0
        acked, self._acked = sorted(self._acked), set()
        self._acked_sizes = {}
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
        self._disk_depth -= deleted
        self._disk_bytes -= freed
        if self._disk_depth <= 0:
            self._disk_depth = self._disk_bytes = 0
        return deleted

    def spill_due(self) -> bool:
        """True when memory holds a message older than ``spill_after_s`` or too many bytes."""
        if not self._memory:
            return False
        oldest = next(iter(self._memory.values()))
        waited = self._monotonic() - oldest.queued_at
        return waited >= self.spill_after_s or self._memory_bytes > MEMORY_MAX_B

    def spill(self) -> int:
        """Write everything memory holds to disk in one transaction; returns how many.

        Everything, not only the overdue part: the next spill is then ``spill_after_s`` away,
        so an outage costs one batch per interval. A message in flight keeps its id on disk;
        its PUBACK deletes the row."""
        if not self._memory:
            return 0
        held = list(self._memory.values())
        packed = [(h, *_pack(h.message.payload)) for h in held]
        size = sum(
            len(data) + len(h.message.topic.encode()) + ROW_OVERHEAD_B for h, data, _ in packed
        )
        dropped_newest = 0
        if self._disk_bytes + size > self.max_bytes and not self._make_room(size):
            # drop_newest (or a batch bigger than the bound): keep the oldest that fit.
            room = self.max_bytes - self._disk_bytes
            kept: list[tuple[_Held, _Bytes, int]] = []
            for entry in packed:
                cost = len(entry[1]) + len(entry[0].message.topic.encode()) + ROW_OVERHEAD_B
                if cost > room:
                    break
                room -= cost
                kept.append(entry)
            dropped_newest = len(packed) - len(kept)
            packed = kept
        with self._store.transaction() as db:
            db.executemany(
                "INSERT INTO outbox (id, topic, payload, encoding, qos, retain, created)"
                " VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        h.message.id,
                        h.message.topic,
                        data,
                        encoding,
                        h.message.qos,
                        int(h.message.retain),
                        _time_text(h.created),
                    )
                    for h, data, encoding in packed
                ],
            )
            self._count_drops(dropped_newest, "newest")
        self._memory.clear()
        self._memory_bytes = 0
        self._disk_depth += len(packed)
        self._disk_bytes += sum(
            len(data) + len(h.message.topic.encode()) + ROW_OVERHEAD_B for h, data, _ in packed
        )
        self.spilled += len(packed)
        return len(packed)

    def oldest(self) -> datetime | None:
        """When the oldest message still waiting for the broker was queued."""
        if self._disk_depth:
            with self._store.transaction() as db:
                # Acknowledged rows awaiting deletion are (in practice) the oldest ones.
                row = db.execute(
                    "SELECT created FROM outbox WHERE id > ? ORDER BY id LIMIT 1",
                    (max(self._acked, default=0),),
                ).fetchone()
            if row:
                return _time_parse(row[0])
        for held in self._memory.values():
            return held.created
        return None

    def resync(self) -> None:
        """Recount the rows on disk (after a rolled-back transaction)."""
        with self._store.transaction() as db:
            count, size = db.execute(
                f"SELECT count(*), coalesce(sum({_SIZE_SQL}), 0) FROM outbox"
            ).fetchone()
        self._disk_depth, self._disk_bytes = int(count), int(size)

    def _in_memory_after(self, after_id: int) -> Iterator[Message]:
        for message_id, held in self._memory.items():
            if message_id > after_id:
                yield held.message

    def _make_room(self, size: int) -> bool:
        """Apply the policy so ``size`` more bytes fit on disk; False if new messages must go."""
        if self.policy == "drop_newest" or size > self.max_bytes:
            return False
        need = self._disk_bytes + size - self.max_bytes
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
                self._acked_sizes = {i: b for i, b in self._acked_sizes.items() if i > last_id}
                self._peeked_sizes = {i: b for i, b in self._peeked_sizes.items() if i > last_id}
        self._disk_depth -= dropped
        self._disk_bytes -= freed
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
