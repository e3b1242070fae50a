"""Housekeeping that runs on the gateway's own clock: pruning rows past retention."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import config
from gateway.app import PRUNE_EVERY_S, STORE_FILE, Gateway, PruneSchedule
from gateway.engine.records import ProfileFlag, ProfileRow
from gateway.model import Event, utc_now
from gateway.run_notes import save_wall_clock, saved_wall_clock
from gateway.store import Store
from tests.support.gateway import fill_to_the_brim, offline_text, serving, until


def test_the_first_prune_is_due_at_once_whatever_the_clock_reads() -> None:
    # A monotonic clock counts from boot: 0 on a fresh host, days on one that has been up.
    for boot in (0.0, 1.0, PRUNE_EVERY_S + 1.0, 40 * 86400.0):
        schedule = PruneSchedule()
        assert schedule.due(boot)
        assert not schedule.due(boot)
        assert not schedule.due(boot + PRUNE_EVERY_S - 0.001)
        assert schedule.due(boot + PRUNE_EVERY_S)
        assert not schedule.due(boot + PRUNE_EVERY_S + 1.0)
        assert schedule.due(boot + 3 * PRUNE_EVERY_S)  # late ticks do not pile up prunes
        assert not schedule.due(boot + 3 * PRUNE_EVERY_S + 1.0)


@pytest.mark.parametrize("boot_s", [0.0, 40 * 86400.0])
async def test_rows_past_retention_go_at_the_first_tick_on_any_host(
    tmp_path: Path, boot_s: float
) -> None:
    text = offline_text(tmp_path / "data", '[[meters]]\nid = "m"\n')
    settings = config.loads(text)
    now = utc_now().replace(microsecond=0)
    old, recent = now - timedelta(days=400), now - timedelta(days=1)  # default depth: 183 days
    store = Store(settings.data_path / STORE_FILE)
    try:
        store.add_profile(
            "m",
            [
                ProfileRow(
                    at, at + timedelta(minutes=15), {"1-0:1.8.0": Decimal(1)}, ProfileFlag(0)
                )
                for at in (old, recent)
            ],
        )
    finally:
        store.close()

    def starts() -> list[object]:
        rows = gateway.store.profile("m", None, now - timedelta(days=1000), now)
        return [row.start for row in rows]

    # The injected clock stands still: only "one tick after start" can trigger the prune.
    gateway = Gateway(settings, outputs=lambda _g: (), monotonic=lambda: boot_s)
    async with serving(gateway):
        await until(lambda: starts() == [recent], 20.0, "old profile rows pruned")


@pytest.mark.parametrize("boot_s", [0.0, 5.0, 40 * 86400.0])
def test_a_store_that_cannot_be_written_is_said_at_once_on_any_host(
    tmp_path: Path, boot_s: float, caplog: pytest.LogCaptureFixture
) -> None:
    # Once silent for the first ten minutes after boot: a Pi whose card is full at boot.
    settings = config.loads(offline_text(tmp_path / "data", '[[meters]]\nid = "m"\n'))
    gateway = Gateway(settings, outputs=lambda _g: (), monotonic=lambda: boot_s)
    try:
        fill_to_the_brim(gateway)
        gateway.report(Event("m", utc_now(), "test", "waits in memory", {}))
        with caplog.at_level(logging.ERROR, logger="gateway.app"):
            gateway.persist()
        said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(said) == 1 and "the data disk is full" in said[0], said
        assert gateway.store_problem is not None
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="gateway.app"):
            gateway.persist()  # the same problem again: a reminder only every STORE_REMINDER_S
        assert not [r for r in caplog.records if r.levelno == logging.ERROR]
    finally:
        gateway.store.close()


def test_the_hourly_wall_clock_note_rides_on_the_next_checkpoint(tmp_path: Path) -> None:
    """The wall clock saved as the floor for the next start is no commit of its own (24 a day
    on the SD card): it waits for the next checkpoint's transaction."""
    settings = config.loads(offline_text(tmp_path / "data", '[[meters]]\nid = "m"\n'))
    gateway = Gateway(settings, outputs=lambda _g: (), monotonic=lambda: 0.0)
    try:
        assert gateway._clock_believable(), "this host's clock is believed"
        assert gateway.store.meter_note("@gateway", "wall_clock") is None, "no commit of its own"
        gateway.persist()
        # A note among the meters' checkpoint rows: no page of its own.
        saved = gateway.store.meter_note("@gateway", "wall_clock")
        assert saved is not None
        assert abs(datetime.fromisoformat(saved) - utc_now()) < timedelta(minutes=5)
        assert saved_wall_clock(gateway.store) == datetime.fromisoformat(saved)
    finally:
        gateway.store.close()


def test_a_wall_clock_saved_where_older_gateways_kept_it_is_still_the_floor(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / STORE_FILE)
    try:
        store.put_state("@gateway", "wall_clock", b"2026-03-01T12:00:00+00:00")
        assert saved_wall_clock(store) == datetime(2026, 3, 1, 12, tzinfo=UTC)
        save_wall_clock(store, datetime(2026, 3, 2, 12, tzinfo=UTC))
        assert saved_wall_clock(store) == datetime(2026, 3, 2, 12, tzinfo=UTC)
    finally:
        store.close()
