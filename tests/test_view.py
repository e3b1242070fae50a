"""The read-only meter view: values in the unit a caller asks for, or None, never a wrong one."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.view import MeterValue, MeterView

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)


def view(**readings: MeterValue) -> MeterView:
    codes = {key.replace("_", ":", 1).replace("_", "."): value for key, value in readings.items()}
    return MeterView("house", "House", lambda: codes)


def test_units_are_converted_or_refused() -> None:
    meter = view(
        **{
            "1-0_1_8_0": MeterValue(1234567.0, "Wh", AT),
            "1-0_1_7_0": MeterValue(1.5, "kW", LATER),
            "1-0_32_7_0": MeterValue(231, "V", AT),
            "0-0_96_1_0": MeterValue("KAM123", None, AT),
        }
    )
    assert meter.number("1-0:1.8.0", "kWh") == 1234.567
    assert meter.number("1-0:1.7.0", "W") == 1500.0
    assert meter.number("1-0:32.7.0", "V") == 231.0
    assert meter.number("1-0:32.7.0", "A") is None  # volts are never amperes
    assert meter.number("0-0:96.1.0", None) is None  # text is no number
    assert meter.text("0-0:96.1.0") == "KAM123"
    assert meter.number("1-0:2.8.0", "kWh") is None  # absent
    assert meter.latest() == LATER


def test_readings_are_read_afresh_on_every_call() -> None:
    values = {"1-0:1.7.0": MeterValue(100.0, "W", AT)}
    meter = MeterView("house", "House", lambda: values)
    assert meter.number("1-0:1.7.0", "W") == 100.0
    values["1-0:1.7.0"] = MeterValue(250.0, "W", LATER)
    assert meter.number("1-0:1.7.0", "W") == 250.0
    assert MeterView("empty", "Empty", dict).latest() is None


def test_a_snapshot_holds_one_moment() -> None:
    values = {"1-0:1.7.0": MeterValue(100.0, "W", AT)}
    meter = MeterView("house", "House", lambda: values)
    moment = meter.snapshot()
    values["1-0:1.7.0"] = MeterValue(250.0, "W", LATER)
    assert moment.number("1-0:1.7.0", "W") == 100.0
    assert meter.number("1-0:1.7.0", "W") == 250.0
