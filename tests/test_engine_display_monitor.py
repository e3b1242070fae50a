"""The LCD lists and the supply monitors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from gateway.engine import EngineSettings, MeterEngine
from gateway.engine.settings import LimitSettings
from gateway.errors import CommandError
from gateway.model import Reading, Sample

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def fed_engine() -> MeterEngine:
    meter = MeterEngine("main", settings=EngineSettings())
    meter.ingest(
        Sample(
            "main",
            "t",
            T0,
            (
                Reading("1-0:1.8.0", Decimal("1234.567"), "kWh"),
                Reading("1-0:2.8.0", Decimal("89.000"), "kWh"),
                Reading("1-0:1.7.0", 1500, "W"),
                Reading("1-0:2.7.0", 0, "W"),
            ),
        )
    )
    return meter


def test_auto_list_scrolls_every_ten_seconds() -> None:
    meter = fed_engine()
    seen = [meter.display_state(T0 + timedelta(seconds=10 * n))["obis"] for n in range(5)]
    auto = list(meter.settings.display.auto)
    start = auto.index(seen[0])
    assert seen == [auto[(start + n) % len(auto)] for n in range(5)]
    state = meter.display_state(T0)
    assert state["list"] == "auto"
    shown = {
        s["obis"]: s
        for s in (meter.display_state(T0 + timedelta(seconds=10 * n)) for n in range(4))
    }
    assert shown["1-0:1.8.0"]["value"] == Decimal("1234.567")
    assert shown["1-0:1.8.0"]["unit"] == "kWh"
    assert shown["1-0:1.8.0"]["id"] == "1.8.0"


def test_push_button_manual_list_and_return_to_auto_after_two_minutes() -> None:
    meter = fed_engine()
    meter.command("display_push", {}, T0)
    first = meter.display_state(T0 + timedelta(seconds=1))
    assert first["list"] == "manual" and first["index"] == 0 and first["obis"] == "1-0:1.8.0"
    meter.command("display_push", {}, T0 + timedelta(seconds=5))
    assert meter.display_state(T0 + timedelta(seconds=6))["index"] == 1
    assert meter.display_state(T0 + timedelta(seconds=5 + 119))["list"] == "manual"
    assert meter.display_state(T0 + timedelta(seconds=5 + 120))["list"] == "auto"


def test_legal_readings_cannot_leave_the_manual_list() -> None:
    meter = fed_engine()
    with pytest.raises(CommandError, match="legal readings"):
        meter.command("set_display_list", {"list": "manual", "readings": ["1-0:2.8.0"]}, T0)
    meter.command("set_display_list", {"list": "auto", "readings": ["1-0:2.8.0"]}, T0)
    assert meter.display_state(T0)["obis"] == "1-0:2.8.0"
    with pytest.raises(CommandError, match=r"1\.\.16"):
        meter.command("set_display_list", {"list": "auto", "readings": ["1-0:1.8.0"] * 17}, T0)
    restored = MeterEngine("main", meter.registers.values(), state=meter.state_blob())
    assert restored.display_state(T0)["obis"] == "1-0:2.8.0", "a changed list survives a restart"


def test_battery_list_while_unpowered() -> None:
    meter = fed_engine()
    assert meter.display_state(T0, powered=False)["list"] == "battery"


def voltages(meter: MeterEngine, at: datetime, l1: float, l2: float, l3: float) -> list[str]:
    update = meter.ingest(
        Sample(
            "main",
            "t",
            at,
            (
                Reading("1-0:32.7.0", l1, "V"),
                Reading("1-0:52.7.0", l2, "V"),
                Reading("1-0:72.7.0", l3, "V"),
            ),
        )
    )
    return [e.kind for e in update.events]


def run_voltages(meter: MeterEngine, start: datetime, seconds: int, *volts: float) -> list[str]:
    kinds: list[str] = []
    for s in range(seconds):
        kinds += voltages(meter, start + timedelta(seconds=s), *volts)
    return kinds


def test_loss_of_neutral_needs_opposite_excursions_held_for_the_hold_time() -> None:
    meter = MeterEngine("main", settings=EngineSettings(limits=LimitSettings(hold_s=5)))
    assert "loss_of_neutral" not in run_voltages(meter, T0, 3, 275.0, 180.0, 230.0)  # too short
    assert "loss_of_neutral" not in run_voltages(
        meter, T0 + timedelta(seconds=3), 10, 260.0, 258.0, 256.0
    )
    kinds = run_voltages(meter, T0 + timedelta(seconds=20), 10, 290.0, 170.0, 231.0)
    assert kinds.count("loss_of_neutral") == 1
    kinds = run_voltages(meter, T0 + timedelta(seconds=40), 10, 231.0, 229.0, 230.0)
    assert kinds.count("loss_of_neutral_cleared") == 1


def test_phase_loss_and_over_and_undervoltage() -> None:
    meter = MeterEngine("main", settings=EngineSettings(limits=LimitSettings(hold_s=2)))
    kinds = run_voltages(meter, T0, 5, 0.0, 231.0, 229.0)
    assert kinds == ["phase_loss"]
    kinds = run_voltages(meter, T0 + timedelta(seconds=10), 5, 230.0, 256.0, 231.0)
    assert sorted(kinds) == ["overvoltage", "phase_loss_cleared"]
    kinds = run_voltages(meter, T0 + timedelta(seconds=20), 5, 230.0, 231.0, 200.0)
    assert sorted(kinds) == ["overvoltage_cleared", "undervoltage"]


def test_display_lists_take_only_obis_codes_and_commands_without_args_refuse_any() -> None:

    meter = MeterEngine("m")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"list": "auto", "readings": ["1-0:1.8.0", "drop table"]}, "readings[1]"),
        ({"list": "auto", "readings": [1]}, "readings[0]"),
        ({"list": "sideways", "readings": ["1-0:1.8.0"]}, "list"),
        ({"list": "auto", "readings": []}, "readings"),
    ]
    for args, field in cases:
        with pytest.raises(CommandError, match=re.escape(field)) as refused:
            meter.command("set_display_list", args, at)
        assert refused.value.code == "bad_argument"
    for name in ("debiting_stop", "display_push", "accept_registers"):
        with pytest.raises(CommandError, match="takes no arguments") as refused:
            meter.command(name, {"junk": 1}, at)
        assert refused.value.code == "bad_argument"
    assert not meter.state.rebase  # accept_registers did not run
