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


def test_floats_are_kept_as_the_decimal_of_their_text_however_often_they_come() -> None:
    engine = MeterEngine("main")
    sent = (230.1, -0.0, 0.0, 0.1, 1e-7, 2.5e16, 230.1, -0.0, 0.1)
    kept = []
    for second, value in enumerate(sent):
        engine.ingest(sample(second, Reading("1-0:32.7.0", value, "V")))
        register = engine.registers["1-0:32.7.0"]
        kept.append(str(register.value))
        assert isinstance(register.value, Decimal)
    # The same text a payload prints for the float, the second time as the first; the sign
    # of a negative zero survives even after a positive zero was seen.
    assert kept == [str(Decimal(str(value))) for value in sent]
    assert kept[1] == kept[7] == "-0.0"
    # A float in another unit is scaled exactly from that text.
    engine.ingest(sample(20, Reading("1-0:1.7.0", 0.1, "kW")))
    assert engine.registers["1-0:1.7.0"].value == Decimal("100.0")


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


def test_instantaneous_values_may_go_down_and_unchanged_totals_are_measured_again() -> None:
    engine = MeterEngine("main")
    first = engine.ingest(sample(0, Reading("1-0:1.7.0", 500, "W"), Reading("1-0:1.8.0", 1, "kWh")))
    update = engine.ingest(
        sample(1, Reading("1-0:1.7.0", 100, "W"), Reading("1-0:1.8.0", 1, "kWh"))
    )
    assert update.registers["1-0:1.7.0"].value == Decimal(100)
    # The total did not change, but it was measured again: its age counts from this reading,
    # and it has held its value since the first one.
    total = update.registers["1-0:1.8.0"]
    assert total.value == Decimal(1)
    assert total.at == sample(1).at
    assert total.since == first.registers["1-0:1.8.0"].at == sample(0).at
    assert not update.events


def test_a_register_heard_again_with_an_older_time_is_not_moved_back() -> None:
    engine = MeterEngine("main")
    engine.ingest(sample(5, Reading("1-0:2.7.0", 0, "W")))
    update = engine.ingest(sample(3, Reading("1-0:2.7.0", 0, "W")))
    assert "1-0:2.7.0" not in update.registers
    assert engine.registers["1-0:2.7.0"].at == sample(5).at


def test_restored_registers_guard_against_decrease_after_restart() -> None:
    first = MeterEngine("main")
    first.ingest(sample(0, Reading("1-0:2.8.0", Decimal("7.5"), "kWh")))
    second = MeterEngine("main", first.registers.values())
    update = second.ingest(sample(5, Reading("1-0:2.8.0", Decimal("0"), "kWh")))
    assert second.registers["1-0:2.8.0"].value == Decimal("7.5")
    assert update.events[0].kind == "register_decrease"


def powers(seconds: int, p_in: int, p_out: int, q_in: int, q_out: int) -> Sample:
    return sample(
        seconds,
        Reading("1-0:1.7.0", p_in, "W"),
        Reading("1-0:2.7.0", p_out, "W"),
        Reading("1-0:3.7.0", q_in, "var"),
        Reading("1-0:4.7.0", q_out, "var"),
    )


def test_the_quadrant_follows_every_reading_even_when_some_values_stay_the_same() -> None:
    engine = MeterEngine("main")
    engine.ingest(powers(0, 0, 1000, 0, 200))
    assert engine.registers["quadrant"].value == 3  # exporting, capacitive
    # Importing now; the reactive export stays at 200 var: an unchanged reading is not zero.
    engine.ingest(powers(1, 300, 0, 0, 200))
    assert engine.registers["quadrant"].value == 4
    # Importing the same 300 W; the reactive power turns inductive.
    engine.ingest(powers(2, 300, 0, 150, 0))
    assert engine.registers["quadrant"].value == 1


def test_a_sample_like_the_last_is_filed_as_one_seen_for_the_first_time() -> None:
    """Samples with the last one's spellings in the same order take a shorter path (the last
    sample's layout, the last float's Decimal): through unchanged, changed, missing, extra,
    reordered and duplicated readings, words, zeros of both signs, NaN and rescaled units,
    each files its readings exactly as an engine that never saw a sample before."""
    power, voltage, energy = "1-0:1.7.0", "1-0:32.7.0", "1-0:1.8.0"
    layouts: list[tuple[Reading, ...]] = [
        (Reading(energy, Decimal("1.000"), "kWh"), Reading(power, 230.5, "W")),
        (Reading(energy, Decimal("1.001"), "kWh"), Reading(power, 230.5, "W")),
        (Reading(energy, Decimal("1.001"), "kWh"), Reading(power, "n/a", "W")),
        (Reading(energy, Decimal("1.001"), "kWh"), Reading(power, 0.0, "W")),
        (Reading(energy, Decimal("1.001"), "kWh"), Reading(power, -0.0, "W")),
        (Reading(energy, Decimal("1.001"), "kWh"), Reading(power, 0.0, "W")),
        (Reading(energy, 1002, "Wh"), Reading(power, 0.5, "kW")),
        (Reading(energy, 1002, "Wh"), Reading(power, 0.5, "kW")),
        (Reading(power, 0.5, "kW"), Reading(energy, 1002, "Wh")),
        (Reading(power, 0.5, "kW"), Reading(voltage, float("nan"), "V")),
        (Reading(power, 0.5, "kW"), Reading(voltage, float("nan"), "V")),
        (Reading("1.7.0", 17, "W"), Reading(power, "off", None), Reading(voltage, 231.0, "V")),
        (Reading("1.7.0", 17, "W"), Reading(power, "off", None), Reading(voltage, 231.0, "V")),
        (Reading("1.7.0", "?", "W"), Reading(power, 18.0, "W"), Reading(voltage, 231.0, "V")),
        (Reading("1.7.0", "?", "W"), Reading(power, 18.0, "W"), Reading(voltage, 231.0, "V")),
        (Reading("1.7.0", "?", "W"), Reading(power, "x", "W"), Reading(voltage, 231.0, "V")),
        (Reading(energy, Decimal("1.003"), "kWh"), Reading(power, 230.5, "W")),
    ]
    engine = MeterEngine("main")

    def filed(engine: MeterEngine, readings: tuple[Reading, ...]) -> tuple[object, ...]:
        values, numbers, lifetime = engine._canonical_values(sample(0, *readings))
        return (
            [(code, repr(value), unit) for code, (value, unit) in values.items()],
            sorted((code, repr(number)) for code, number in numbers.items()),
            list(lifetime),
        )

    for readings in layouts:
        assert filed(engine, readings) == filed(MeterEngine("main"), readings), readings
