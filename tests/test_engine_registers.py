"""Engine first cut: registers keyed by OBIS, canonical units, totals never go backwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.engine import MeterEngine
from gateway.model import Reading, Sample

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sample(seconds: int, *readings: Reading) -> Sample:
    return Sample("main", "test", T0 + timedelta(seconds=seconds), readings)


def test_values_are_kept_with_their_time_in_canonical_units() -> None:
    engine = MeterEngine("main")
    update = engine.ingest(
        sample(0, Reading("1.8.0", 1234567, "Wh"), Reading("1-0:1.7.0", Decimal("1.5"), "kW"))
    )
    assert {"1-0:1.8.0", "1-0:1.7.0"} <= set(update.registers)
    energy = engine.registers["1-0:1.8.0"]
    assert (energy.value, energy.unit, energy.at) == (Decimal("1234.567"), "kWh", T0)
    assert engine.registers["1-0:1.7.0"].value == Decimal("1500.0")
    assert engine.registers["1-0:1.7.0"].unit == "W"


def test_a_decrease_is_an_event_not_a_value() -> None:
    engine = MeterEngine("main")
    engine.ingest(sample(0, Reading("1-0:1.8.0", Decimal("100.000"), "kWh")))
    update = engine.ingest(
        sample(1, Reading("1-0:1.8.0", Decimal("99.999"), "kWh"), Reading("1-0:1.7.0", 5, "W"))
    )
    assert engine.registers["1-0:1.8.0"].value == Decimal("100.000")
    assert "1-0:1.8.0" not in update.registers
    assert "1-0:1.7.0" in update.registers
    (event,) = update.events
    assert event.kind == "register_decrease"
    assert event.data["obis"] == "1-0:1.8.0"
    assert "99.999" in event.detail


def test_instantaneous_values_may_go_down_and_unchanged_totals_are_not_updates() -> None:
    engine = MeterEngine("main")
    engine.ingest(sample(0, Reading("1-0:1.7.0", 500, "W"), Reading("1-0:1.8.0", 1, "kWh")))
    update = engine.ingest(
        sample(1, Reading("1-0:1.7.0", 100, "W"), Reading("1-0:1.8.0", 1, "kWh"))
    )
    assert "1-0:1.7.0" in update.registers
    assert "1-0:1.8.0" not in update.registers
    assert not update.events


def test_restored_registers_guard_against_decrease_after_restart() -> None:
    first = MeterEngine("main")
    first.ingest(sample(0, Reading("1-0:2.8.0", Decimal("7.5"), "kWh")))
    second = MeterEngine("main", first.registers.values())
    update = second.ingest(sample(5, Reading("1-0:2.8.0", Decimal("0"), "kWh")))
    assert second.registers["1-0:2.8.0"].value == Decimal("7.5")
    assert update.events[0].kind == "register_decrease"
