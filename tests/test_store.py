"""The SQLite store: migrations, registers, events, module state, crash safety."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import stat
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from gateway.checkpoint import MeterRow, _inflate, decode_row, encode_row
from gateway.engine import AnalysisRow, ProfileFlag, ProfileRow, Register
from gateway.engine.state import EngineState
from gateway.errors import StoreError
from gateway.model import Event
from gateway.store import _MIGRATIONS, PAGE_ROWS, ROW_BYTES_MAX, SCHEMA_VERSION, Store

T0 = datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC)


def test_new_store_is_migrated_to_current_schema_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "sub" / "g.db")
    store.close()
    db = sqlite3.connect(tmp_path / "sub" / "g.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_registers_round_trip_exact_types(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    registers = [
        Register("1-0:1.8.0", Decimal("12345.678"), "kWh", T0),
        Register("1-0:1.7.0", 1234.5, "W", T0),
        Register("0-0:96.14.0", 2, None, T0 + timedelta(seconds=1)),
        Register("0-0:96.1.0", "5706567123456789", None, T0),
    ]
    store.save_registers("main", registers)
    store.save_registers("other", registers[:1])
    store.close()
    reopened = Store(tmp_path / "g.db")
    loaded = {reg.obis: reg for reg in reopened.load_registers("main")}
    assert loaded == {reg.obis: reg for reg in registers}
    assert isinstance(loaded["1-0:1.8.0"].value, Decimal)
    assert len(reopened.load_registers("other")) == 1


def test_register_upsert_keeps_one_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    for kwh in ("1.000", "1.001", "1.002"):
        store.save_registers("main", [Register("1-0:1.8.0", Decimal(kwh), "kWh", T0)])
    (only,) = store.load_registers("main")
    assert only.value == Decimal("1.002")


def test_events_are_filtered_and_paged_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    events = [
        Event("main", T0 + timedelta(minutes=i), "kind_a" if i % 2 else "kind_b", f"e{i}", {"i": i})
        for i in range(10)
    ]
    ids = store.add_events(events)
    assert ids == sorted(ids)
    assert [e.detail for _, e in store.events("main", kind="kind_a")] == [
        "e1",
        "e3",
        "e5",
        "e7",
        "e9",
    ]
    first = store.events("main", limit=4)
    second = store.events("main", limit=4, after_id=first[-1][0])
    assert [e.detail for _, e in first + second] == [f"e{i}" for i in range(8)]
    window = store.events(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
    assert [e.detail for _, e in window] == ["e2", "e3"]
    assert store.events("main", kind="kind_a")[0][1].data == {"i": 1}


def test_module_state_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    assert store.get_state("wmbus1", "formats") is None
    store.put_state("wmbus1", "formats", b"\x00\x01")
    store.put_state("wmbus1", "formats", b"\x02")
    assert store.get_state("wmbus1", "formats") == b"\x02"


def test_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    store.save_registers("main", [Register("1-0:1.8.0", Decimal("1"), "kWh", T0)])
    with pytest.raises(RuntimeError), store.transaction():
        store.save_registers("main", [Register("1-0:1.8.0", Decimal("2"), "kWh", T0)])
        raise RuntimeError("power cut in the middle")
    assert store.load_registers("main")[0].value == Decimal("1")
    assert store.integrity_ok()


def test_a_new_data_directory_and_database_are_the_owners_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # what a shell usually has: 755 directories, 644 files
    try:
        store = Store(tmp_path / "state" / "gateway.db")
        store.add_events([Event("m", datetime.now(UTC), "test", "a write makes the WAL")])
        modes = {
            path.name: stat.S_IMODE(path.stat().st_mode)
            for path in (tmp_path / "state", *(tmp_path / "state").iterdir())
        }
        store.close()
    finally:
        os.umask(old)
    assert modes.pop("state") == 0o700
    assert modes.keys() >= {"gateway.db", "gateway.db-wal"}
    assert set(modes.values()) == {0o600}, modes


def test_an_old_layout_database_opens_with_its_registers_and_engine_state_intact(
    tmp_path: Path,
) -> None:
    """A data directory from before the compact checkpoint rows (schema 1: a row per register
    and an engine_state blob) is migrated on open, every register exactly as it was."""
    path = tmp_path / "gateway.db"
    old = sqlite3.connect(path)
    first_schema = _MIGRATIONS[0]
    assert isinstance(first_schema, str)
    old.executescript(first_schema)
    old.executemany(
        "INSERT INTO registers (meter, obis, value, kind, unit, at) VALUES (?,?,?,?,?,?)",
        [
            ("main", "1-0:1.8.0", "12345.678", "decimal", "kWh", "2026-03-29T00:59:59.123456Z"),
            ("main", "1-0:1.7.0", "1234.5", "float", "W", "2026-03-29T00:59:59.123456Z"),
            ("main", "0-0:96.14.0", "2", "int", None, "2026-03-29T01:00:00.123456Z"),
            ("main", "0-0:96.1.0", "5706567123456789", "str", None, "2026-03-29T00:59:59.123456Z"),
            ("other", "1-0:1.8.0", "7.000", "decimal", "kWh", "2026-03-29T00:59:59.123456Z"),
        ],
    )
    old.execute(
        "INSERT INTO engine_state (meter, state) VALUES (?, ?)",
        ("main", b'{"operating_s":3599.0}'),
    )
    old.execute("INSERT INTO engine_state (meter, state) VALUES ('gone', x'7b7d')")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()

    store = Store(path)
    try:
        main = store.load_meter("main")
        assert main is not None
        assert {reg.obis: reg for reg in main.registers} == {
            "1-0:1.8.0": Register("1-0:1.8.0", Decimal("12345.678"), "kWh", T0),
            "1-0:1.7.0": Register("1-0:1.7.0", 1234.5, "W", T0),
            "0-0:96.14.0": Register("0-0:96.14.0", 2, None, T0 + timedelta(seconds=1)),
            "0-0:96.1.0": Register("0-0:96.1.0", "5706567123456789", None, T0),
        }
        assert all(type(reg.value) is Decimal for reg in main.registers if reg.unit == "kWh")
        assert main.state == b'{"operating_s":3599.0}'
        assert [reg.value for reg in store.load_registers("other")] == [Decimal("7.000")]
        gone = store.load_meter("gone")
        assert gone is not None and gone.state == b"{}" and gone.registers == ()
        assert store.integrity_ok()
    finally:
        store.close()
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "registers" not in tables and "engine_state" not in tables
    db.close()


def test_a_meter_checkpoint_that_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    with store.transaction() as db:
        db.execute("INSERT INTO meter_checkpoint (meter, body) VALUES ('main', x'00ff')")
    with pytest.raises(StoreError, match="checkpoint of meter main"):
        store.load_meter("main")
    store.close()


def _interval(n: int) -> tuple[ProfileRow, AnalysisRow]:
    start = T0 + timedelta(minutes=15 * n)
    end = start + timedelta(minutes=15)
    channels = ("1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0")
    profile = ProfileRow(
        start, end, {c: Decimal(f"0.{n:03d}{i}") for i, c in enumerate(channels)}, ProfileFlag(0)
    )
    noise = random.Random(n)  # measured means: full-precision floats, which compress little
    means = {f"1-0:{i}.7.0": 230.0 * noise.random() for i in range(14)}
    return profile, AnalysisRow(start, end, means)


def test_closed_intervals_ride_in_the_checkpoint_row_then_are_filed_in_one_batch(
    tmp_path: Path,
) -> None:
    """Each checkpoint carries the intervals closed since the last filing in the meter's own
    row (one page written); a batch reaches the interval log only when the row grows past most
    of a page. Reads see every interval either way, once, in order."""
    store = Store(tmp_path / "g.db")
    registers = (Register("1-0:1.8.0", Decimal("1.000"), "kWh", T0),)
    profile: list[ProfileRow] = []
    analysis: list[AnalysisRow] = []
    row = MeterRow(registers, b"{}")
    filings = 0
    for n in range(40):
        p, a = _interval(n)
        profile.append(p)
        analysis.append(a)
        carried = len(row.profile)
        (row,) = store.save_meters(
            {"main": MeterRow(registers, b"{}", (*row.profile, p), (*row.analysis, a))}
        ).values()
        filings += len(row.profile) == 0
        if row.profile:
            assert len(row.profile) == carried + 1, "nothing filed while the row is small"
        span = (T0 - timedelta(days=1), T0 + timedelta(days=1))
        assert list(store.profile("main", None, *span)) == profile
        assert list(store.analysis("main", *span)) == analysis
        assert list(store.profile("main", 900, *span)) == profile
        assert list(store.profile("main", 3600, *span)) == []
    with store.snapshot() as view:
        assert list(view.profile("main", None, T0, T0 + timedelta(days=1))) == profile
    assert 2 <= filings < 20, "filed in batches, not at every checkpoint"
    db = store.connection  # the store holds the database exclusively
    (in_log,) = db.execute("SELECT sum(count) FROM interval_log WHERE kind = 0").fetchone()
    (blobs,) = db.execute("SELECT count(*) FROM interval_log").fetchone()
    (body,) = db.execute("SELECT body FROM meter_checkpoint WHERE meter = 'main'").fetchone()
    assert in_log + len(row.profile) == 40
    assert blobs == 2 * filings, "one profile and one analysis blob a filing"
    assert db.execute("SELECT count(*) FROM profile").fetchone() == (0,)
    assert len(body) <= ROW_BYTES_MAX

    # An interval replayed after it was filed (the same start): the newer one is read, once.
    replayed = replace(profile[0], values={"1-0:1.8.0": Decimal("9.999")})
    store.save_meters({"main": replace(row, profile=(*row.profile, replayed))})
    read = list(store.profile("main", None, T0 - timedelta(days=1), T0 + timedelta(days=1)))
    assert read[0] == replayed and len(read) == 40
    store.close()
    reopened = Store(tmp_path / "g.db")
    assert len(list(reopened.profile("main", None, T0, T0 + timedelta(days=1)))) == 40
    reopened.close()


def test_a_meter_note_lives_in_the_checkpoint_row_and_outlasts_its_rewrites(
    tmp_path: Path,
) -> None:
    """An output's per-meter value (the MQTT sequence number) is kept in the meter's row, and a
    checkpoint rewriting the registers keeps it."""
    store = Store(tmp_path / "g.db")
    assert store.meter_note("main", "mqtt_seq") is None
    store.put_meter_note("main", "mqtt_seq", "41")  # before the meter's first checkpoint
    registers = (Register("1-0:1.8.0", Decimal("1.000"), "kWh", T0),)
    with store.transaction():
        store.save_meters({"main": MeterRow(registers, b"{}")})
        store.put_meter_note("main", "mqtt_seq", "42")
        store.put_meter_note("main", "other", "x")
    store.save_meters({"main": MeterRow(registers, b'{"operating_s":1.0}')})
    store.close()
    reopened = Store(tmp_path / "g.db")
    assert reopened.meter_note("main", "mqtt_seq") == "42"
    assert reopened.meter_note("main", "other") == "x"
    assert reopened.meter_note("other", "mqtt_seq") is None
    loaded = reopened.load_meter("main")
    assert loaded is not None and loaded.state == b'{"operating_s":1.0}'
    db = reopened.connection  # the store holds the database exclusively
    assert db.execute("SELECT count(*) FROM meter_checkpoint").fetchone()[0] == 1
    reopened.close()


def test_the_store_holds_its_database_alone_with_no_wal_index_file(tmp_path: Path) -> None:
    """The WAL index stays in memory (no -shm pages dirtied per commit on the SD card), so the
    database is the gateway's alone: a second opener is refused with the reason, not corrupted."""
    store = Store(tmp_path / "g.db")
    try:
        store.put_state("module", "key", b"value")
        assert (tmp_path / "g.db-wal").exists()
        assert not (tmp_path / "g.db-shm").exists()
        with pytest.raises(StoreError, match="another process holds it"):
            Store(tmp_path / "g.db")
    finally:
        store.close()
    reopened = Store(tmp_path / "g.db")
    assert reopened.get_state("module", "key") == b"value"
    reopened.close()


def test_a_long_read_pages_each_interval_length_and_merges_them_by_start(tmp_path: Path) -> None:
    """Rows of two interval lengths, more than a page of each, come back complete and in start
    order; rows filed after the read began do not show up in it."""
    store = Store(tmp_path / "g.db")
    count = PAGE_ROWS * 2 + 7

    def rows(length_s: int, n: int, offset: int = 0) -> list[ProfileRow]:
        return [
            ProfileRow(
                T0 + timedelta(seconds=length_s * (i + offset)),
                T0 + timedelta(seconds=length_s * (i + offset + 1)),
                {"1-0:1.8.0": Decimal(i)},
                ProfileFlag.NONE,
            )
            for i in range(n)
        ]

    quarters, hours = rows(900, count), rows(3600, count // 4)
    store.add_profile("main", quarters + hours)
    span = (T0, T0 + timedelta(days=365))
    with store.snapshot() as view:
        read = view.profile("main", None, *span)
        first = [next(read) for _ in range(3)]
        store.add_profile("main", rows(900, 5, offset=count))  # filed after the read began
        assert store.prune("main", profile_before=span[1], analysis_before=span[1]) == 0
        got = first + list(read)
    assert len(got) == len(quarters) + len(hours)
    assert [row.start for row in got] == sorted(row.start for row in quarters + hours)
    assert sorted(got, key=lambda r: (r.start, r.end)) == sorted(
        quarters + hours, key=lambda r: (r.start, r.end)
    )
    assert len(list(store.profile("main", 900, *span))) == count + 5
    store.close()


def test_ten_meters_file_their_intervals_into_the_log_and_read_them_back_whole(
    tmp_path: Path,
) -> None:
    """Ten meters' rows would take more pages carrying their intervals than without: each
    checkpoint appends them to the interval log instead, and the rows stay bare. Reads cross the
    log's day-long queries, take an interval replayed later from its newest blob, cut a long
    refill into day-long blobs and see nothing a snapshot did not have at its start; a prune
    drops whole blobs and trims the one that straddles the retention."""
    store = Store(tmp_path / "g.db")
    meters = [f"m{n}" for n in range(10)]
    registers = (Register("1-0:1.8.0", Decimal("1.000"), "kWh", T0),)
    intervals = [_interval(n) for n in range(3 * 96)]  # three days of quarter hours
    for hour in range(0, len(intervals), 4):
        batch = intervals[hour : hour + 4]
        stored = store.save_meters(
            {
                meter: MeterRow(
                    registers, b"{}", tuple(p for p, _ in batch), tuple(a for _, a in batch)
                )
                for meter in meters
            }
        )
        assert all(not row.profile and not row.analysis for row in stored.values())
    db = store.connection
    assert db.execute("SELECT count(*) FROM interval_log").fetchone() == (2 * 10 * 72,)
    assert db.execute("SELECT count(*) FROM profile").fetchone() == (0,)
    span = (T0 - timedelta(days=10), T0 + timedelta(days=10))
    profile = [p for p, _ in intervals]
    analysis = [a for _, a in intervals]
    for meter in meters:
        assert list(store.profile(meter, None, *span)) == profile
        assert list(store.analysis(meter, *span)) == analysis
    assert list(store.profile("m3", 900, *span)) == profile
    assert list(store.profile("m3", 3600, *span)) == []
    assert list(store.profile("other", None, *span)) == []
    middle = (T0 + timedelta(hours=30), T0 + timedelta(hours=31, minutes=1))
    assert list(store.analysis("m5", *middle)) == analysis[120:125]

    # A refill of two days in one checkpoint (after downtime), replaying day two's intervals.
    refill = [replace(p, values={"1-0:1.8.0": Decimal("7.777")}) for p in profile[96:]]
    with store.snapshot() as view:
        before = view.profile("m0", None, *span)
        first = next(before)
        store.save_meters({meter: MeterRow(registers, b"{}", tuple(refill)) for meter in meters})
        assert [first, *before] == profile, "a snapshot sees what there was at its start"
    assert list(store.profile("m0", None, *span)) == profile[:96] + refill
    spans = db.execute(
        "SELECT last_start - first_start FROM interval_log WHERE meter = 'm0' AND count > 4"
    ).fetchall()
    assert len(spans) == 2 and all(s < 86_400 * 10**6 for (s,) in spans), "cut into days"

    # Retention: day one and a quarter hour of day two go; the blob holding both is trimmed.
    cut = profile[97].start
    removed = store.prune("m0", profile_before=cut, analysis_before=span[0])
    assert removed == 97 + 1  # day one's 96, the replaced 97th in its first blob, the refill's
    assert list(store.profile("m0", None, *span)) == refill[1:]
    assert list(store.analysis("m0", *span)) == analysis
    assert list(store.profile("m1", None, *span)) == profile[:96] + refill
    store.close()
    reopened = Store(tmp_path / "g.db")
    assert list(reopened.profile("m0", None, *span)) == refill[1:]
    assert reopened.integrity_ok()
    reopened.close()


def test_a_database_of_the_last_schema_opens_with_its_filed_and_carried_intervals_intact(
    tmp_path: Path,
) -> None:
    """A data directory from before the interval log (schema 3: intervals filed into the
    profile and analysis tables, the newest carried in the meter's row) opens at the current
    schema; every interval reads back exactly, and new filings go on from there."""
    path = tmp_path / "gateway.db"
    old = sqlite3.connect(path, isolation_level=None)
    for step in _MIGRATIONS[:3]:
        if callable(step):
            step(old)
        else:
            old.executescript(step)
    profile = [p for p, _ in (_interval(n) for n in range(8))]
    analysis = [a for _, a in (_interval(n) for n in range(8))]
    old.executemany(
        "INSERT INTO profile (meter, interval_s, start, values_json, flags) VALUES (?,?,?,?,?)",
        [
            (
                "main",
                900,
                p.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                json.dumps({k: str(v) for k, v in p.values.items()}),
                int(p.flags),
            )
            for p in profile[:5]
        ],
    )
    old.executemany(
        "INSERT INTO analysis (meter, interval_s, start, values_json) VALUES (?,?,?,?)",
        [
            ("main", 900, a.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), json.dumps(a.values))
            for a in analysis[:5]
        ],
    )
    registers = (Register("1-0:1.8.0", Decimal("1.000"), "kWh", T0),)
    old.execute(
        "INSERT INTO meter_checkpoint (meter, body, notes) VALUES (?, ?, ?)",
        (
            "main",
            encode_row(MeterRow(registers, b"{}", tuple(profile[5:]), tuple(analysis[5:]))),
            '{"mqtt_seq": "9"}',
        ),
    )
    old.execute("PRAGMA user_version = 3")
    old.close()

    span = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    store = Store(path)
    try:
        assert store.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert list(store.profile("main", None, *span)) == profile
        assert list(store.analysis("main", *span)) == analysis
        assert store.meter_note("main", "mqtt_seq") == "9"
        loaded = store.load_meter("main")
        assert loaded is not None and loaded.registers == registers
        # Ten meters' worth of intervals: the carried ones and a replay are filed into the log.
        more = [_interval(n) for n in range(8, 48)]
        replayed = replace(profile[0], values={"1-0:1.8.0": Decimal("5.555")})
        store.save_meters(
            {
                "main": replace(
                    loaded,
                    profile=(*loaded.profile, replayed, *(p for p, _ in more)),
                    analysis=(*loaded.analysis, *(a for _, a in more)),
                )
            }
        )
        assert list(store.profile("main", None, *span)) == [
            replayed,
            *profile[1:],
            *(p for p, _ in more),
        ]
        assert list(store.analysis("main", *span)) == analysis + [a for _, a in more]
        assert store.integrity_ok()
    finally:
        store.close()


def test_a_row_compressed_with_the_preset_dictionary_is_smaller_and_old_rows_still_read() -> None:
    """Rows name their zlib dictionary in the header: a row older gateways wrote (no dictionary)
    reads as before, one naming a dictionary this gateway lacks is refused with the meter
    named, and a three-phase meter's row is far smaller than without the dictionary."""
    noise = random.Random(7)
    codes = [f"1-0:{c}.7.0" for c in (1, 2, 3, 4, 14, 13, 21, 22, 32, 31, 41, 42, 52, 51, 61)]
    codes += [f"1-0:{q}.8.{t}" for q in (1, 3) for t in range(5)] + ["1-0:2.8.0", "1-0:4.8.0"]
    registers = (
        *(Register(c, Decimal(f"{noise.random() * 900:.3f}"), "kWh", T0) for c in codes),
        Register("breaker_state", "connected", None, T0),
        Register("quadrant", 1, None, T0),
    )
    p, a = _interval(3)
    row = MeterRow(registers, msgspec.json.encode(EngineState()), (p,), (a,))
    body = encode_row(row)
    assert decode_row("main", body) == row
    plain = zlib.compress(msgspec.json.encode(msgspec.json.decode(_inflate("main", body))), 9)
    assert decode_row("main", plain) == row, "a row from before the dictionary"
    assert len(body) < 0.7 * len(plain), (len(body), len(plain))
    packer = zlib.compressobj(9, zdict=b'["1-0:1.7.0","d","0","W",0] another dictionary')
    foreign = packer.compress(_inflate("main", body)) + packer.flush()
    with pytest.raises(StoreError, match="meter main was compressed with a dictionary"):
        decode_row("main", foreign)
    with pytest.raises(StoreError, match="checkpoint of meter main cannot be read"):
        decode_row("main", body[:-6])


def test_events_kept_from_before_the_rebuild_keep_their_ids_and_new_ones_follow(
    tmp_path: Path,
) -> None:
    """Schema 5 rebuilds the events table without AUTOINCREMENT (no sqlite_sequence page in
    every event's commit): the events of an older database keep their ids, kinds and data, and
    new ones are numbered after the largest, as before."""
    path = tmp_path / "gateway.db"
    old = sqlite3.connect(path, isolation_level=None)
    for step in _MIGRATIONS[:4]:
        if callable(step):
            step(old)
        else:
            old.executescript(step)
    old.executemany(
        "INSERT INTO events (id, meter, at, kind, detail, data) VALUES (?,?,?,?,?,?)",
        [
            (3, "main", "2026-03-29T00:59:59.123456Z", "credit_low", "at 10", '{"level": 10}'),
            (7, "main", "2026-03-29T01:00:00.000000Z", "top_up", "+5 kWh", '{"amount": "5"}'),
            (8, "other", "2026-03-29T01:00:01.000000Z", "breaker_connected", "closed", "{}"),
        ],
    )
    old.execute("PRAGMA user_version = 4")
    old.close()

    store = Store(path)
    try:
        assert [(i, e.kind, e.data) for i, e in store.events(limit=10)] == [
            (3, "credit_low", {"level": 10}),
            (7, "top_up", {"amount": "5"}),
            (8, "breaker_connected", {}),
        ]
        assert [i for i, _ in store.events("main", limit=10)] == [3, 7]
        (new_id,) = store.add_events([Event("main", T0, "credit_exhausted", "none left", {})])
        assert new_id == 9
        sql = store.connection.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'events'"
        ).fetchone()[0]
        assert "AUTOINCREMENT" not in sql
        assert store.connection.execute(
            "SELECT count(*) FROM sqlite_sequence WHERE name = 'events'"
        ).fetchone() == (0,)
        assert store.integrity_ok()
    finally:
        store.close()
