"""A command is applied and logged in one transaction, or not at all (SQLite's own disk full)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.errors import CommandError
from gateway.model import Command
from tests.support.gateway import offline_text, running

METER = '[[meters]]\nid = "m"\n[meters.prepayment]\nenabled = true\n'


def fill_to_the_brim(gateway: Gateway) -> None:
    """Cap the database at its size, then use the room left in the event log's pages (where a
    command's event goes): SQLite's own SQLITE_FULL, as on a full SD card."""
    db = gateway.store._db  # the writer connection: the cap is a property of the connection
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")
    for size in (3000, 300, 30, 3, 1):
        while True:
            try:
                with gateway.store.transaction() as tx:
                    tx.execute(
                        "INSERT INTO events (meter, at, kind, detail, data)"
                        " VALUES ('filler', '', 'filler', ?, '{}')",
                        ("x" * size,),
                    )
            except sqlite3.OperationalError as err:
                assert "full" in str(err)
                break


def top_ups(gateway: Gateway) -> list[str]:
    return [e.data["id"] for _, e in gateway.store.events("m", kind="top_up")]


async def test_a_top_up_on_a_full_disk_changes_nothing_and_its_retry_works(
    tmp_path: Path,
) -> None:
    async with running(offline_text(tmp_path, METER)) as gateway:
        fill_to_the_brim(gateway)
        command = Command("m", "top_up", "c1", {"id": "t1", "sequence": 1, "amount": "10"})
        with pytest.raises(CommandError) as refused:
            await gateway.execute(command)
        assert refused.value.code == "not_stored"
        assert "full" in str(refused.value)
        engine = gateway.engines["m"]
        assert engine.state.prepayment.balance == Decimal(0)
        assert engine.state.prepayment.recent_ids == []
        assert top_ups(gateway) == []

        gateway.store._db.execute("PRAGMA max_page_count = 1073741823")  # space again
        result = await gateway.execute(command)  # the same top-up: not a replay
        assert Decimal(result["balance"]) == Decimal(10)
        assert top_ups(gateway) == ["t1"]
        with pytest.raises(CommandError) as replayed:
            await gateway.execute(command)
        assert replayed.value.code == "replayed"
        assert top_ups(gateway) == ["t1"]
