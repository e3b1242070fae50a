"""SQLite non-volatile memory: meter checkpoints, events, module state, the MQTT outbox, profiles.

Written rarely and in batches (checkpoints, rare records, the MQTT outbox only while the broker is
away: README "Durability"), so each commit may be fully durable: WAL with ``synchronous=FULL``
means a committed checkpoint survives a power cut, which is what lets a register only the
gateway counts be shown as soon as it is committed. A meter's registers and engine state are one
compact row (gateway/checkpoint.py), so a checkpoint writes a page per few meters; closed profile
and analysis intervals ride in that row or are appended to the interval log in compressed blobs,
so a filing writes at the end of one table instead of into the middle of two.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import groupby
from pathlib import Path
from typing import Any, TypeVar

from gateway.checkpoint import MeterRow, decode_row, encode_row
from gateway.engine import AnalysisRow, BillingRecord, ProfileFlag, ProfileRow, Register
from gateway.errors import StoreError
from gateway.model import Event, Value

__all__ = ["SCHEMA_VERSION", "Snapshot", "Store", "checkpoint_in", "profile_in", "registers_in"]

_LOGGER = logging.getLogger(__name__)
_Row = TypeVar("_Row", ProfileRow, AnalysisRow)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EVER = (_EPOCH, datetime(9999, 1, 1, tzinfo=UTC))


def _fold_into_meter_rows(db: sqlite3.Connection) -> None:
    """Schema 2: the registers table (a row per register) and the engine_state blobs become one
    compact row per meter; every register and state is carried over exactly."""
    db.execute(
        "CREATE TABLE meter_checkpoint (meter TEXT PRIMARY KEY, body BLOB NOT NULL)"
    )  # a rowid table: a row of up to a page stays in its leaf (WITHOUT ROWID spills at 1 KB)
    registers: dict[str, list[Register]] = {}
    for meter, code, value, kind, unit, at in db.execute(
        "SELECT meter, obis, value, kind, unit, at FROM registers ORDER BY meter, obis"
    ):
        registers.setdefault(meter, []).append(
            Register(code, _value_from_db(value, kind), unit, _time_from_db(at))
        )
    states = {
        meter: bytes(state) for meter, state in db.execute("SELECT meter, state FROM engine_state")
    }
    db.executemany(
        "INSERT INTO meter_checkpoint (meter, body) VALUES (?, ?)",
        [
            (meter, encode_row(MeterRow(tuple(registers.get(meter, ())), states.get(meter))))
            for meter in sorted(registers.keys() | states.keys())
        ],
    )
    db.execute("DROP TABLE registers")
    db.execute("DROP TABLE engine_state")


# Each entry migrates from its index to index + 1; never edit a released step, append one. A step
# is SQL, or a function for what SQL cannot do (compressing rows).
_MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    """
    CREATE TABLE registers (
        meter TEXT NOT NULL,
        obis TEXT NOT NULL,
        value TEXT NOT NULL,
        kind TEXT NOT NULL,
        unit TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (meter, obis)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        meter TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX events_by_meter_time ON events (meter, at);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        encoding INTEGER NOT NULL DEFAULT 0,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE engine_state (
        meter TEXT PRIMARY KEY,
        state BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE profile (
        meter TEXT NOT NULL,
        interval_s INTEGER NOT NULL,
        start TEXT NOT NULL,
        values_json TEXT NOT NULL,
        flags INTEGER NOT NULL,
        PRIMARY KEY (meter, interval_s, start)
    ) WITHOUT ROWID;
    CREATE TABLE analysis (
        meter TEXT NOT NULL,
        interval_s INTEGER NOT NULL,
        start TEXT NOT NULL,
        values_json TEXT NOT NULL,
        PRIMARY KEY (meter, interval_s, start)
    ) WITHOUT ROWID;
    CREATE TABLE billing (
        meter TEXT NOT NULL,
        number INTEGER NOT NULL,
        at TEXT NOT NULL,
        values_json TEXT NOT NULL,
        estimated INTEGER NOT NULL,
        PRIMARY KEY (meter, number)
    ) WITHOUT ROWID;
    CREATE TABLE module_state (
        module TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (module, key)
    ) WITHOUT ROWID;
    """,
    _fold_into_meter_rows,
    # Small per-meter values outputs keep with the checkpoint (MQTT state sequence numbers): in
    # the meter's own row, so saving them writes no page the checkpoint does not write anyway.
    "ALTER TABLE meter_checkpoint ADD COLUMN notes TEXT NOT NULL DEFAULT '{}'",
    # Filed intervals as compact blobs appended in rowid order (``Store.save_meters``): a
    # filing dirties only the table's and the index's last pages, where the profile and
    # analysis tables (a row per interval, keyed by meter first) take ten meters' filings into
    # ten places of each tree and split pages half full. Those tables stay: rows filed there
    # before, and imported histories, are read from them as before.
    """
    CREATE TABLE interval_log (
        id INTEGER PRIMARY KEY,
        meter TEXT NOT NULL,
        kind INTEGER NOT NULL,
        first_start INTEGER NOT NULL,
        last_start INTEGER NOT NULL,
        count INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX interval_log_by_last ON interval_log (last_start, meter, kind, first_start);
    """,
    # Events without AUTOINCREMENT: it made every event's commit rewrite the sqlite_sequence
    # page too (a third of its pages). Events are never deleted, so the largest id plus one is
    # what AUTOINCREMENT gave: ids only grow, and a reader paging with ``after_id`` misses none.
    # A table rebuild (SQLite cannot drop it in place), every id carried over.
    """
    CREATE TABLE events_v5 (
        id INTEGER PRIMARY KEY,
        meter TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL,
        data TEXT NOT NULL
    );
    INSERT INTO events_v5 (id, meter, at, kind, detail, data)
        SELECT id, meter, at, kind, detail, data FROM events ORDER BY id;
    DROP TABLE events;
    ALTER TABLE events_v5 RENAME TO events;
    CREATE INDEX events_by_meter_time ON events (meter, at);
    DELETE FROM sqlite_sequence WHERE name = 'events';
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)
# Rows a long read takes per query: a few 100 kB in memory, and the gateway commits in between.
PAGE_ROWS = 500
# What a commit costs the card, measured as the kernel counts it (/proc/PID/io write_bytes, the
# WAL reused, bench/sd_card.py): the WAL frame of one 4 KiB page (24 + 4,096 bytes) dirties two
# kernel pages, and the WAL file's new mtime one inode block: 12 KB, however few bytes changed.
# A -shm wal-index would add its header and a hash page to every commit (locking_mode=EXCLUSIVE
# keeps it in memory: 20 -> 12 KB), and a WAL growing into new blocks adds their allocation
# (18 KB a commit while it grows). The page size stays 4 KiB: 1 KiB pages saved little for one
# meter's row and cost more for ten, and an existing database would need a VACUUM to change.
#
# WAL frames are copied back into the database after this many, and the WAL is then written
# over from its start: a small WAL grows into new blocks only once per start of the gateway
# (a few commits of the 30 s warm-up), and a page that many checkpoints rewrote reaches the
# database once per round. 16 pages: one meter's row is copied back every 16 checkpoints, ten
# meters' rows every few; at 64 one meter's first 64 commits after a start pay the growth
# (1.81 against 1.23 MB/day measured over the first two hours at 900 s), ten meters the same.
WAL_AUTOCHECKPOINT_PAGES = 16
# The room a page gives rows, as ``save_meters`` counts it (a row stays in its leaf up to 4,061
# bytes). Meters' rows carry the intervals closed since they were last filed while that takes no
# more pages than the rows without them: one meter's row (about 600 bytes) carries them until it
# holds this much, some hours of a three-phase meter's, so its checkpoints write the one page they
# write anyway. Ten meters' rows (about 6 KB, two pages) would need a page more at the first
# checkpoint that carried anything and more at every one after (strace of bench/sd_card.py: ten
# pages a checkpoint at 3.5 KB rows), so their intervals are filed at every checkpoint instead:
# appended to the interval log, a few hundred bytes a meter, at its end.
ROW_BYTES_MAX = 3584
JOURNAL_SIZE_LIMIT_B = 4 * 1024 * 1024
# The interval log's kinds (its ``kind`` column).
_PROFILE, _ANALYSIS = 0, 1
# One blob of the interval log never spans more than this from its first interval's start to its
# last's (a long refill is cut up): a read of [since, until) then finds every blob it needs among
# those whose last start lies in [since, until + LOG_SPAN), by the index on last_start.
LOG_SPAN_US = 86_400 * 1_000_000


class _Reads:
    """Queries shared by the store itself and the long reads of downloads (``Snapshot``).

    Intervals are read a page at a time, each page a short query resuming after the last row
    (keyset), bounded by the newest row there was when the read began: no statement stays open
    between pages, so the one connection can commit a checkpoint while a download is half-way.
    """

    _db: sqlite3.Connection
    # Events and interval blobs with a larger id were added after the read began (a snapshot's
    # bounds).
    _event_id_max: int = 2**63 - 1
    _log_id_max: int = 2**63 - 1

    def events(  # noqa: PLR0913 - keyword-only filters
        self,
        meter: str | None = None,
        *,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[tuple[int, Event]]:
        """Events in time order, filtered; page with ``after_id``."""
        clauses: list[str] = ["id > ?", "id <= ?"]
        params: list[object] = [after_id, self._event_id_max]
        for clause, value in (
            ("meter = ?", meter),
            ("kind = ?", kind),
            ("at >= ?", _time_to_db(since) if since else None),
            ("at < ?", _time_to_db(until) if until else None),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        rows = self._db.execute(
            "SELECT id, meter, at, kind, detail, data FROM events WHERE "
            + " AND ".join(clauses)
            + " ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [
            (row_id, Event(m, _time_from_db(at), k, detail, json.loads(data)))
            for row_id, m, at, k, detail, data in rows
        ]

    def profile(
        self, meter: str, interval_s: int | None, since: datetime, until: datetime
    ) -> Iterator[ProfileRow]:
        """Profile intervals starting in [since, until), oldest first, streamed from disk; the
        rows as they are at the call (later ones do not show up half-way)."""
        unfiled = sorted(
            (
                row
                for row in self._unfiled(meter).profile
                if since <= row.start < until
                and interval_s in (None, _length_s(row.start, row.end))
            ),
            key=_start_end,
        )
        filed = (
            ProfileRow(
                _time_from_db(start),
                _time_from_db(start) + timedelta(seconds=length),
                {k: Decimal(v) for k, v in json.loads(values).items()},
                ProfileFlag(flags),
            )
            for length, start, values, flags in self._paged(
                "profile",
                "values_json, flags",
                meter=meter,
                interval_s=interval_s,
                since=since,
                until=until,
            )
        )
        logged = (
            row
            for row in self._logged(meter, _PROFILE, since, until)
            if interval_s in (None, _length_s(row.start, row.end))
        )
        return _newest_wins(filed, logged, unfiled)

    def analysis(self, meter: str, since: datetime, until: datetime) -> Iterator[AnalysisRow]:
        """Analysis rows starting in [since, until), oldest first, streamed from disk; the rows
        as they are at the call."""
        unfiled = sorted(
            (row for row in self._unfiled(meter).analysis if since <= row.start < until),
            key=_start_end,
        )
        filed = (
            AnalysisRow(
                _time_from_db(start),
                _time_from_db(start) + timedelta(seconds=length),
                json.loads(values),
            )
            for length, start, values in self._paged(
                "analysis", "values_json", meter=meter, interval_s=None, since=since, until=until
            )
        )
        return _newest_wins(filed, self._logged(meter, _ANALYSIS, since, until), unfiled)

    def _logged(self, meter: str, kind: int, since: datetime, until: datetime) -> Iterator[Any]:
        """A meter's intervals of one kind from the interval log, starting in [since, until),
        by start; a day of them per query, each a short one (no statement stays open). An
        interval in two blobs (replayed after it was filed) is read from the newer one."""
        low, high = _micros(since), _micros(until)
        while low < high:
            # Skip to the first blob that can hold anything at or after ``low``.
            (nearest,) = self._db.execute(
                "SELECT min(last_start) FROM interval_log WHERE last_start >= ? AND meter = ?"
                " AND kind = ? AND id <= ?",
                (low, meter, kind, self._log_id_max),
            ).fetchone()
            if nearest is None:
                return
            low = max(low, int(nearest) - LOG_SPAN_US)
            end = min(high, low + LOG_SPAN_US)
            found: dict[tuple[datetime, datetime], Any] = {}
            for _, body in sorted(
                self._db.execute(
                    "SELECT id, body FROM interval_log WHERE last_start >= ? AND last_start < ?"
                    " AND meter = ? AND kind = ? AND first_start < ? AND id <= ?",
                    (low, end + LOG_SPAN_US, meter, kind, end, self._log_id_max),
                )
            ):
                blob = decode_row(meter, bytes(body))
                for row in blob.profile if kind == _PROFILE else blob.analysis:
                    if low <= _micros(row.start) < end:
                        found[row.start, row.end] = row  # a later blob replaces
            yield from sorted(found.values(), key=_start_end)
            low = end

    def _unfiled(self, meter: str) -> MeterRow:
        """The intervals a meter's checkpoint row still carries (not yet in their tables)."""
        return _load_meter(self._db, meter) or MeterRow()

    def billing(
        self, meter: str, *, limit: int = 24, before: int | None = None
    ) -> list[BillingRecord]:
        """Billing history, newest first; page with ``before`` (a debiting period number)."""
        rows = self._db.execute(
            "SELECT number, at, values_json, estimated FROM billing WHERE meter = ? AND number < ?"
            " ORDER BY number DESC LIMIT ?",
            (meter, before if before is not None else 2**62, limit),
        )
        return [
            BillingRecord(number, _time_from_db(at), json.loads(values), bool(estimated))
            for number, at, values, estimated in rows
        ]

    def _paged(  # noqa: PLR0913 - one query's parts, by name
        self,
        table: str,
        columns: str,
        *,
        meter: str,
        interval_s: int | None,
        since: datetime,
        until: datetime,
    ) -> Iterator[tuple[Any, ...]]:
        """(interval_s, start, *columns) of a meter's rows starting in [since, until), by start.

        Each interval length is read along its own primary-key range (meter, interval_s,
        start), a page at a time, up to the newest row it had at the call; the lengths are
        merged by start. Only ``table`` and ``columns`` from this module go into the SQL.
        """
        lengths = [interval_s] if interval_s is not None else self._lengths(table, meter)
        low, high = _time_to_db(since), _time_to_db(until)
        query = (
            f"SELECT interval_s, start, {columns} FROM {table}"
            " WHERE meter = ? AND interval_s = ? AND start {after} ? AND start <= ?"
            " ORDER BY start LIMIT ?"
        )
        streams = []
        for length in lengths:
            newest = self._db.execute(
                f"SELECT start FROM {table} WHERE meter = ? AND interval_s = ? AND start >= ?"
                " AND start < ? ORDER BY start DESC LIMIT 1",
                (meter, length, low, high),
            ).fetchone()
            if newest is not None:
                streams.append(self._pages(query, (meter, length), low, str(newest[0])))
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=_start_text)

    def _lengths(self, table: str, meter: str) -> list[int]:
        """The interval lengths a meter has rows of, each found by an index seek."""
        found: list[int] = []
        while row := self._db.execute(
            f"SELECT interval_s FROM {table} WHERE meter = ? AND interval_s > ?"
            " ORDER BY interval_s LIMIT 1",
            (meter, found[-1] if found else -1),
        ).fetchone():
            found.append(int(row[0]))
        return found

    def _pages(
        self, query: str, key: tuple[str, int], low: str, last: str
    ) -> Iterator[tuple[Any, ...]]:
        """One key's rows from ``low`` up to ``last`` (both included), a page per query."""
        after, resume = ">=", low  # the first page includes ``low`` itself
        while page := self._db.execute(
            query.format(after=after), (*key, resume, last, PAGE_ROWS)
        ).fetchall():
            yield from page
            if len(page) < PAGE_ROWS:
                return
            after, resume = ">", page[-1][1]


class Snapshot(_Reads):
    """One long read (a download) of the store, consistent from its start to its end.

    The store's connection holds the database exclusively (no wal-index file on the card,
    README "Durability"), so a download reads through it, a page at a time between the
    gateway's commits: events and logged intervals up to the newest id at the start, older
    filed intervals up to the newest at the call and the checkpoint's unfiled ones as they were
    then. Rows are only added
    or replaced meanwhile, except by a prune, which the store defers while a snapshot is open:
    nothing committed meanwhile shows up half-way, and nothing is cut out. Close it promptly.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._db = store.connection
        try:
            newest = self._db.execute("SELECT max(id) FROM events").fetchone()[0]
            newest_blob = self._db.execute("SELECT max(id) FROM interval_log").fetchone()[0]
        except sqlite3.Error as err:
            raise StoreError(f"cannot read the store {store.path}: {err}") from err
        self._event_id_max = int(newest or 0)
        self._log_id_max = int(newest_blob or 0)
        self._open = True
        store.long_reads += 1

    def close(self) -> None:
        """End the long read (a deferred prune may run again); idempotent."""
        if self._open:
            self._open = False
            self._store.long_reads -= 1


class Store(_Reads):
    """The gateway's one database; every method commits before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rollback_hooks: list[Callable[[], None]] = []
        self._committed_hooks: list[Callable[[], None]] = []
        self._aborted_hooks: list[Callable[[], None]] = []
        # Snapshots (long downloads) open now: a prune waits until there are none.
        self.long_reads = 0
        try:
            # Readings, credit and command logs are the household's business: owner only, whatever
            # the umask (systemd's StateDirectory is 0700 already; a manual run is not).
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = self._connect()
            self._migrate()
        except (OSError, sqlite3.Error) as err:
            held = (
                " (another process holds it: a gateway running on this data_dir must be stopped"
                " first)"
                if isinstance(err, sqlite3.OperationalError) and "locked" in str(err)
                else ""
            )
            raise StoreError(f"cannot open the store {path}: {err}{held}") from err

    @property
    def connection(self) -> sqlite3.Connection:
        """The one connection to the database (it holds the file exclusively)."""
        return self._db

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A consistent long read for the length of the block (see ``Snapshot``)."""
        view = Snapshot(self)
        try:
            yield view
        finally:
            view.close()

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # SQLite's -wal follows
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # Another process holding the file (a second gateway on the same data_dir) is waited
        # for this long, then refused.
        db.execute("PRAGMA busy_timeout=5000")
        # The gateway is the database's only user: holding it exclusively keeps the WAL's index
        # in memory instead of a -shm file whose pages every commit dirties (two kernel pages,
        # as many as the WAL frame itself). Set before the first read, or SQLite maps the file.
        # Long downloads read through this connection (``Snapshot``).
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        # WAL: a commit appends only the pages it changed (and syncs one file) instead of
        # writing them twice through a rollback journal.
        db.execute("PRAGMA journal_mode=WAL")
        # FULL (an fsync per commit) is cheap at a commit every few minutes and is the contract:
        # what only the gateway counts is shown once committed, so a commit must survive a
        # power cut. NORMAL would only save fsyncs, not bytes.
        db.execute("PRAGMA synchronous=FULL")
        # A small WAL, written over from its start again and again: see WAL_AUTOCHECKPOINT_PAGES.
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        # Keeps the WAL file from staying large after a long broker outage was drained.
        db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_B}")
        # Which file is open: a database deleted (or replaced) under a running gateway would
        # otherwise take every later write with it when the process ends.
        self._identity = _identity(self.path)
        return db

    def file_problem(self) -> str | None:
        """Why the file at ``path`` is no longer the database this store writes, or None."""
        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            return f"{self.path} was deleted while the gateway had it open"
        except OSError as err:
            return f"cannot see {self.path}: {err.strerror}"
        if identity != self._identity:
            return f"{self.path} was replaced by another file while the gateway had it open"
        return None

    def restore_file(self) -> None:
        """Write the open database (everything committed so far) back to ``path``, and carry
        on there. A stranger's file found at the path is kept beside it, never overwritten."""
        if self._db.in_transaction:
            raise StoreError("cannot restore the store file inside a transaction")
        spare = self.path.with_name(self.path.name + ".restoring")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            target = sqlite3.connect(spare)
            try:
                self._db.backup(target)
            finally:
                target.close()
            if self.path.exists():
                self.path.rename(self.path.with_name(f"{self.path.name}.found-{os.getpid()}"))
            os.replace(spare, self.path)
            old, self._db = self._db, self._connect()
        except (OSError, sqlite3.Error) as err:
            with suppress(OSError):
                spare.unlink()
            raise StoreError(f"cannot write {self.path} back: {err}") from err
        old.close()

    def close(self) -> None:
        """Checkpoint and close; idempotent."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.ProgrammingError:
            return  # already closed
        except sqlite3.OperationalError as err:
            # A full or read-only disk: what is committed stays in the WAL, read at next start.
            _LOGGER.warning("store %s closed without a checkpoint: %s", self.path, err)
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable write (nested calls join the outer one)."""
        if self._db.in_transaction:
            yield self._db
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._committed_hooks.clear()
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            hooks, self._aborted_hooks = self._aborted_hooks, []
            for hook in hooks:
                hook()
            self._rolled_back()
            raise
        self._aborted_hooks.clear()
        hooks, self._committed_hooks = self._committed_hooks, []
        for hook in hooks:
            hook()

    def after_rollback(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` if the current transaction rolls back (a COMMIT on a full disk
        included); never if it commits. Outside a transaction: never."""
        if self._db.in_transaction:
            self._aborted_hooks.append(hook)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` once the current transaction has committed (at once outside one); never
        if it rolls back. For in-memory views of what is durable (``Meters.published``)."""
        if self._db.in_transaction:
            self._committed_hooks.append(hook)
        else:
            hook()

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` after any transaction rolls back: whoever keeps counts of rows in
        memory (the outbox) recounts, since what the transaction added is gone again."""
        self._rollback_hooks.append(hook)

    def _rolled_back(self) -> None:
        for hook in self._rollback_hooks:
            try:
                hook()
            except (sqlite3.Error, StoreError) as err:
                _LOGGER.warning("after a rollback: %s", err)

    # meter checkpoints -------------------------------------------------------------------------

    def load_meter(self, meter: str) -> MeterRow | None:
        """A meter's last checkpoint (registers, engine state, unfiled intervals), or None."""
        return _load_meter(self._db, meter)

    def save_meters(self, rows: Mapping[str, MeterRow]) -> dict[str, MeterRow]:
        """Checkpoint meters (one row each, one transaction for all); returns the rows as
        stored. The rows carry their intervals while that takes no more pages than the rows
        without them (one meter's row up to ROW_BYTES_MAX); otherwise every row's intervals are
        filed into the interval log, and the rows keep none."""
        carried = {meter: encode_row(row) for meter, row in rows.items()}
        bare_rows = {meter: replace(row, profile=(), analysis=()) for meter, row in rows.items()}
        bare = {meter: encode_row(row) for meter, row in bare_rows.items()}
        with self.transaction() as db:
            if _pages(carried.values()) > _pages(bare.values()):
                for meter, row in rows.items():
                    self._file(db, meter, _PROFILE, row.profile)
                    self._file(db, meter, _ANALYSIS, row.analysis)
                stored, bodies = bare_rows, bare
            else:
                stored, bodies = dict(rows), carried
            db.executemany(
                "INSERT INTO meter_checkpoint (meter, body) VALUES (?, ?)"
                " ON CONFLICT (meter) DO UPDATE SET body = excluded.body",
                bodies.items(),
            )
        return stored

    @staticmethod
    def _file(
        db: sqlite3.Connection, meter: str, kind: int, rows: Iterable[ProfileRow | AnalysisRow]
    ) -> None:
        """Append a meter's intervals of one kind to the interval log: a compressed blob per
        LOG_SPAN_US of starts (one, unless a long refill)."""
        chunks: list[list[ProfileRow | AnalysisRow]] = []
        for row in sorted(rows, key=_start_end):
            if not chunks or _micros(row.start) - _micros(chunks[-1][0].start) >= LOG_SPAN_US:
                chunks.append([])
            chunks[-1].append(row)
        for chunk in chunks:
            db.execute(
                "INSERT INTO interval_log (meter, kind, first_start, last_start, count, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    meter,
                    kind,
                    _micros(chunk[0].start),
                    _micros(chunk[-1].start),
                    len(chunk),
                    _blob(kind, chunk),
                ),
            )

    def put_meter_note(self, meter: str, key: str, value: str) -> None:
        """Keep a small value with a meter's checkpoint (its row: no page of its own)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meter_checkpoint (meter, body, notes)"
                " VALUES (?, ?, json_object(?, ?)) ON CONFLICT (meter)"
                " DO UPDATE SET notes = json_set(notes, '$.' || json_quote(?), ?)",
                (meter, encode_row(MeterRow()), key, value, key, value),
            )

    def meter_note(self, meter: str, key: str) -> str | None:
        """A value kept with a meter's checkpoint, or None."""
        row = self._db.execute(
            "SELECT json_extract(notes, '$.' || json_quote(?)) FROM meter_checkpoint"
            " WHERE meter = ?",
            (key, meter),
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def load_registers(self, meter: str) -> list[Register]:
        """Every register last saved for a meter."""
        row = self.load_meter(meter)
        return list(row.registers) if row else []

    def save_registers(self, meter: str, registers: Iterable[Register]) -> None:
        """Upsert registers into a meter's checkpoint, keeping the rest of it."""
        with self.transaction():
            row = self.load_meter(meter) or MeterRow()
            merged = {reg.obis: reg for reg in row.registers}
            merged.update((reg.obis, reg) for reg in registers)
            self.save_meters({meter: replace(row, registers=tuple(merged.values()))})

    # events ------------------------------------------------------------------------------------

    def add_events(self, events: Iterable[Event]) -> list[int]:
        """Append events to the log; returns their ids."""
        ids: list[int] = []
        with self.transaction() as db:
            for event in events:
                cursor = db.execute(
                    "INSERT INTO events (meter, at, kind, detail, data) VALUES (?,?,?,?,?)",
                    (
                        event.meter,
                        _time_to_db(event.at),
                        event.kind,
                        event.detail,
                        json.dumps(dict(event.data), default=str),
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    # engine state, profiles, analysis log, billing -----------------------------------------------

    def add_profile(self, meter: str, rows: Iterable[ProfileRow]) -> None:
        """Store load-profile intervals; a replayed interval replaces itself."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO profile (meter, interval_s, start, values_json, flags)"
                " VALUES (?,?,?,?,?)",
                [
                    (
                        meter,
                        int((row.end - row.start).total_seconds()),
                        _time_to_db(row.start),
                        json.dumps({k: str(v) for k, v in row.values.items()}),
                        int(row.flags),
                    )
                    for row in rows
                ],
            )

    def add_analysis(self, meter: str, rows: Iterable[AnalysisRow]) -> None:
        """Store analysis-logger rows."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO analysis (meter, interval_s, start, values_json)"
                " VALUES (?,?,?,?)",
                [
                    (
                        meter,
                        int((row.end - row.start).total_seconds()),
                        _time_to_db(row.start),
                        json.dumps(row.values),
                    )
                    for row in rows
                ],
            )

    def add_billing(self, meter: str, records: Iterable[BillingRecord]) -> None:
        """Store debiting-stop snapshots; a replayed stop keeps the first snapshot."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO billing (meter, number, at, values_json, estimated)"
                " VALUES (?,?,?,?,?)",
                [
                    (
                        meter,
                        record.number,
                        _time_to_db(record.at),
                        json.dumps(record.values, default=str),
                        int(record.estimated),
                    )
                    for record in records
                ],
            )

    def prune(self, meter: str, *, profile_before: datetime, analysis_before: datetime) -> int:
        """Drop profile and analysis rows older than their retention; returns rows removed.
        While a download reads (``long_reads``) nothing is removed: it would cut rows out of
        the file half-way; the caller tries again later."""
        if self.long_reads:
            return 0
        with self.transaction() as db:
            removed = db.execute(
                "DELETE FROM profile WHERE meter = ? AND start < ?",
                (meter, _time_to_db(profile_before)),
            ).rowcount
            removed += db.execute(
                "DELETE FROM analysis WHERE meter = ? AND start < ?",
                (meter, _time_to_db(analysis_before)),
            ).rowcount
            removed += _prune_log(db, meter, _PROFILE, _micros(profile_before))
            removed += _prune_log(db, meter, _ANALYSIS, _micros(analysis_before))
        return int(removed)

    # module state ------------------------------------------------------------------------------

    def get_state(self, module: str, key: str) -> bytes | None:
        """A module's persisted blob (learned formats, pulse counts, ...)."""
        row = self._db.execute(
            "SELECT value FROM module_state WHERE module = ? AND key = ?", (module, key)
        ).fetchone()
        return bytes(row[0]) if row else None

    def put_state(self, module: str, key: str, value: bytes) -> None:
        """Persist a module's blob."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO module_state (module, key, value) VALUES (?,?,?)"
                " ON CONFLICT (module, key) DO UPDATE SET value = excluded.value",
                (module, key, value),
            )

    # maintenance -------------------------------------------------------------------------------

    def integrity_ok(self) -> bool:
        """SQLite's own full integrity check."""
        row = self._db.execute("PRAGMA integrity_check").fetchone()
        return bool(row and row[0] == "ok")

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema {version}, newer than this gateway's {SCHEMA_VERSION};"
                " upgrade meter-gateway"
            )
        for step in range(version, SCHEMA_VERSION):
            _LOGGER.info("migrating store %s to schema %d", self.path, step + 1)
            migration = _MIGRATIONS[step]
            with self.transaction() as db:
                if callable(migration):
                    migration(db)
                else:
                    for statement in migration.split(";"):
                        if statement.strip():
                            db.execute(statement)
                db.execute(f"PRAGMA user_version = {step + 1}")


def _prune_log(db: sqlite3.Connection, meter: str, kind: int, before: int) -> int:
    """Drop a meter's logged intervals of one kind starting before ``before`` (µs): whole blobs,
    and the older part of the one blob that straddles it; returns intervals removed."""
    removed = 0
    for blob_id, first, count, body in db.execute(
        "SELECT id, first_start, count, body FROM interval_log WHERE last_start < ?"
        " AND meter = ? AND kind = ? AND first_start < ?",
        (before + LOG_SPAN_US, meter, kind, before),
    ).fetchall():
        blob = decode_row(meter, bytes(body))
        kept = [
            row
            for row in (blob.profile if kind == _PROFILE else blob.analysis)
            if _micros(row.start) >= before
        ]
        removed += int(count) - len(kept)
        if not kept:
            db.execute("DELETE FROM interval_log WHERE id = ?", (blob_id,))
        elif _micros(kept[0].start) != first:
            db.execute(
                "UPDATE interval_log SET first_start = ?, count = ?, body = ? WHERE id = ?",
                (_micros(kept[0].start), len(kept), _blob(kind, kept), blob_id),
            )
    return removed


def _blob(kind: int, rows: list[ProfileRow | AnalysisRow]) -> bytes:
    profile = tuple(row for row in rows if isinstance(row, ProfileRow))
    analysis = tuple(row for row in rows if isinstance(row, AnalysisRow))
    return encode_row(
        MeterRow(profile=profile) if kind == _PROFILE else MeterRow(analysis=analysis)
    )


def _pages(bodies: Iterable[bytes]) -> int:
    """Roughly how many pages rows of these sizes take (ROW_BYTES_MAX of each page's room)."""
    return -(-sum(len(body) for body in bodies) // ROW_BYTES_MAX)


def _micros(at: datetime) -> int:
    # Integer microseconds since the epoch (UTC): the interval log's time columns.
    delta = at.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _length_s(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds())


def _newest_wins(*streams: Iterable[_Row]) -> Iterator[_Row]:
    """Streams of rows (each by start), older sources first, merged in start order; an
    interval in several (replayed after it was filed) is the one from the newest source."""
    merged = heapq.merge(
        *(((row.start, rank, row) for row in stream) for rank, stream in enumerate(streams)),
        key=lambda item: item[0],
    )
    for _, same_start in groupby(merged, key=lambda item: item[0]):
        newest: dict[datetime, _Row] = {}
        for _, _, row in sorted(same_start, key=lambda item: item[1]):
            newest[row.end] = row
        yield from sorted(newest.values(), key=_start_end)


def _start_end(row: ProfileRow | AnalysisRow) -> tuple[datetime, datetime]:
    return row.start, row.end


def _start_text(row: tuple[Any, ...]) -> str:
    return str(row[1])


def registers_in(db: sqlite3.Connection, meter: str) -> dict[str, Register]:
    """A meter's checkpointed registers, read through any connection to the database (a test's
    or a bench's own, while the gateway runs or after it was killed)."""
    row = _load_meter(db, meter)
    return {reg.obis: reg for reg in row.registers} if row else {}


def profile_in(db: sqlite3.Connection, meter: str) -> list[ProfileRow]:
    """Every profile interval of a meter (filed, logged and still carried in its row), read
    through any connection to the database, as downloads read them."""
    reader = _Reads()
    reader._db = db
    return list(reader.profile(meter, None, *_EVER))


def checkpoint_in(db: sqlite3.Connection, meter: str) -> MeterRow | None:
    """A meter's checkpoint row (with the intervals not yet filed), through any connection."""
    return _load_meter(db, meter)


def _load_meter(db: sqlite3.Connection, meter: str) -> MeterRow | None:
    found = db.execute("SELECT body FROM meter_checkpoint WHERE meter = ?", (meter,)).fetchone()
    return decode_row(meter, bytes(found[0])) if found else None


def _identity(path: Path) -> tuple[int, int]:
    found = path.stat()
    return found.st_dev, found.st_ino


def _value_from_db(text: str, kind: str) -> Value:
    converters: dict[str, Any] = {"decimal": Decimal, "int": int, "float": float, "str": str}
    result: Value = converters[kind](text)
    return result


def _time_to_db(at: datetime) -> str:
    # Fixed-width UTC text sorts in time order, which the range queries rely on.
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time_from_db(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
