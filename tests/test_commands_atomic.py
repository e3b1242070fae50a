"""A command is applied and logged in one transaction, or not at all (SQLite's own disk full)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.errors import CommandError
from gateway.model import Command
from tests.support.gateway import fill_to_the_brim, offline_text, running

METER = '[[meters]]\nid = "m"\n[meters.prepayment]\nenabled = true\n'


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
