"""Breaker, smart disconnect and prepayment: every transition, every refusal, restarts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.engine import Action, EngineSettings, MeterEngine
from gateway.engine.prepayment import Prepayment
from gateway.engine.settings import (
    BreakerSettings,
    FriendlyHours,
    PrepaymentSettings,
    SmartDisconnectSettings,
)
from gateway.engine.state import PrepaymentState
from gateway.errors import CommandError
from gateway.model import Reading, Sample, Value

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday, 11:00 in Copenhagen
CPH = ZoneInfo("Europe/Copenhagen")


def meter(
    breaker: BreakerSettings | None = None, prepayment: PrepaymentSettings | None = None
) -> MeterEngine:
    settings = EngineSettings(
        breaker=breaker or BreakerSettings(enabled=True, actuator="relay1"),
        prepayment=prepayment or PrepaymentSettings(),
    )
    return MeterEngine("main", settings=settings, zone=CPH)


def restarted(engine: MeterEngine) -> MeterEngine:
    return MeterEngine(
        "main",
        list(engine.registers.values()),
        settings=engine.settings,
        zone=CPH,
        state=engine.state_blob(),
    )


def feed(
    engine: MeterEngine, at: datetime, kwh: str, watts: float = 500, **extra: Value
) -> list[str]:
    readings = [Reading("1-0:1.8.0", Decimal(kwh), "kWh"), Reading("1-0:1.7.0", watts, "W")]
    readings += [Reading(code, value, None) for code, value in extra.items()]
    return [e.kind for e in engine.ingest(Sample("main", "t", at, tuple(readings))).events]


def state(engine: MeterEngine) -> str:
    return engine.state.breaker.state


def test_remote_disconnect_arm_and_button_reconnect() -> None:
    engine = meter()
    update, result = engine.command("disconnect", {}, T0)
    assert result["state"] == "disconnected"
    assert update.actions == [Action("relay1", "open")]
    assert result["actuator"] == "pending"
    with pytest.raises(CommandError, match="remote reconnect"):
        engine.command("button", {}, T0)
    _, result = engine.command("reconnect", {}, T0)  # remote_reconnect = "arm" by default
    assert result["state"] == "ready_for_reconnection"
    update, result = engine.command("button", {}, T0)
    assert result["state"] == "connected"
    assert update.actions == [Action("relay1", "closed")]
    with pytest.raises(CommandError, match="already connected"):
        engine.command("reconnect", {}, T0)


def test_direct_remote_reconnect_and_refusals_by_control_mode() -> None:
    engine = meter(
        BreakerSettings(enabled=True, remote_reconnect="direct", button_disconnect=False)
    )
    engine.command("disconnect", {}, T0)
    _, result = engine.command("reconnect", {}, T0)
    assert result["state"] == "connected"
    with pytest.raises(CommandError, match="button may not disconnect"):
        engine.command("button", {}, T0)
    locked = meter(BreakerSettings(enabled=True, remote_disconnect=False))
    with pytest.raises(CommandError, match="not enabled"):
        locked.command("disconnect", {}, T0)
    with pytest.raises(CommandError, match="no breaker"):
        meter(BreakerSettings()).command("disconnect", {}, T0)


def test_button_disconnect_is_ready_for_reconnection() -> None:
    engine = meter()
    _, result = engine.command("button", {}, T0)
    assert result["state"] == "ready_for_reconnection"
    _, result = engine.command("button", {}, T0)
    assert result["state"] == "connected"


def test_actuator_must_confirm_or_the_state_says_so() -> None:
    engine = meter()
    engine.command("disconnect", {}, T0)
    feed(engine, T0 + timedelta(seconds=1), "1.000", breaker_feedback="closed")
    assert engine.state.breaker.actuator == "pending"
    kinds = feed(engine, T0 + timedelta(seconds=2), "1.000", breaker_feedback="open")
    assert "breaker_confirmed" in kinds
    assert engine.registers["breaker_actuator"].value == "confirmed"
    engine.command("reconnect", {}, T0 + timedelta(seconds=3))
    engine.command("button", {}, T0 + timedelta(seconds=4))
    update = engine.tick(T0 + timedelta(seconds=30))
    assert [e.kind for e in update.events] == ["breaker_actuator_failed"]
    assert engine.registers["breaker_actuator"].value == "failed"


def test_smart_disconnect_on_load_and_button_reconnect() -> None:
    engine = meter(
        BreakerSettings(
            enabled=True,
            smart_disconnect=SmartDisconnectSettings(
                enabled=True, power_w=10000, duration_s=30, reconnect="button"
            ),
        )
    )
    feed(engine, T0, "1.000", watts=12000)
    assert state(engine) == "connected"
    kinds = feed(engine, T0 + timedelta(seconds=31), "1.100", watts=12000)
    assert "breaker_disconnected" in kinds and state(engine) == "disconnected"
    with pytest.raises(CommandError, match="held open by smart"):
        engine.command("reconnect", {}, T0 + timedelta(seconds=32))
    feed(engine, T0 + timedelta(seconds=40), "1.100", watts=0)
    assert state(engine) == "ready_for_reconnection"
    engine.command("button", {}, T0 + timedelta(seconds=41))
    assert state(engine) == "connected"


def test_smart_disconnect_limits_by_command() -> None:
    engine = meter(
        BreakerSettings(
            enabled=True,
            smart_disconnect=SmartDisconnectSettings(
                enabled=True, power_w=10000, duration_s=30, reconnect="auto", reconnect_after_s=10
            ),
        )
    )
    engine.command("set_limits", {"power_w": 1000, "duration_s": 5}, T0)
    feed(engine, T0, "1.0", watts=1500)
    feed(engine, T0 + timedelta(seconds=6), "1.0", watts=1500)
    assert state(engine) == "disconnected"
    feed(engine, T0 + timedelta(seconds=7), "1.0", watts=0)
    feed(engine, T0 + timedelta(seconds=18), "1.0", watts=0)
    assert state(engine) == "connected", "auto reconnect after the load went down"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"power_w": -1}, "power_w"),
        ({"power_w": 1e308}, "power_w"),  # once accepted: a limit that never trips
        ({"power_w": float("nan")}, "power_w"),
        ({"current_a": float("inf")}, "current_a"),
        ({"duration_s": True}, "duration_s"),
        ({"volts": 1}, "volts"),
    ]
    for args, field in cases:
        with pytest.raises(CommandError, match=field) as refused:
            engine.command("set_limits", args, T0)
        assert refused.value.code == "bad_argument"
    with pytest.raises(CommandError, match="at least one"):
        engine.command("set_limits", {}, T0)


def prepaid(**overrides: object) -> MeterEngine:
    options: dict[str, object] = {
        "enabled": True,
        "unit": "kWh",
        "warning_levels": (2.0, 1.0),
        "friendly_hours": None,
        **overrides,
    }
    return meter(prepayment=PrepaymentSettings(**options))  # type: ignore[arg-type]


def test_credit_runs_out_opens_and_a_top_up_recloses() -> None:
    engine = prepaid()
    engine.command("top_up", {"id": "a", "sequence": 1, "amount": 3}, T0)
    kinds = []
    for minute, kwh in enumerate(("10.0", "11.0", "12.5", "13.2")):
        kinds += feed(engine, T0 + timedelta(minutes=minute), kwh)
    assert kinds.count("credit_low") == 2
    assert "credit_exhausted" in kinds and "breaker_disconnected" in kinds
    assert engine.registers["credit"].value == Decimal("-0.2")
    update, result = engine.command("top_up", {"id": "b", "sequence": 2, "amount": "5"}, T0)
    assert Decimal(result["balance"]) == Decimal("4.8")
    assert state(engine) == "connected" and update.actions == [Action("relay1", "closed")]


def test_replayed_and_reordered_top_ups_are_refused() -> None:
    engine = prepaid()
    engine.command("top_up", {"id": "x1", "sequence": 5, "amount": 1}, T0)
    with pytest.raises(CommandError, match="already applied"):
        engine.command("top_up", {"id": "x1", "sequence": 6, "amount": 1}, T0)
    with pytest.raises(CommandError, match="not after"):
        engine.command("top_up", {"id": "x2", "sequence": 4, "amount": 1}, T0)
    for args, field in [
        ({"id": "x3", "sequence": 7, "amount": "-5"}, "amount"),
        ({"id": "x3", "sequence": 7, "amount": "1e999999"}, "amount"),
        ({"id": "x3", "sequence": 7, "amount": float("nan")}, "amount"),
        ({"id": "x3", "sequence": 2**80, "amount": 1}, "sequence"),
        ({"id": "x3", "sequence": 5 + 1001, "amount": 1}, "sequence"),  # far past the last
        ({"id": "", "sequence": 7, "amount": 1}, "id"),
        ({"id": "x3", "sequence": 7, "amount": 1, "note": "?"}, "note"),
    ]:
        with pytest.raises(CommandError, match=field) as refused:
            engine.command("top_up", args, T0)
        assert refused.value.code == "bad_argument", args
    again = restarted(engine)
    with pytest.raises(CommandError, match="already applied"):
        again.command("top_up", {"id": "x1", "sequence": 9, "amount": 1}, T0)
    assert again.state.prepayment.balance == Decimal(1)


def test_emergency_credit_then_exhaustion() -> None:
    engine = prepaid(emergency_credit=1.0, warning_levels=())
    engine.command("top_up", {"id": "a", "sequence": 1, "amount": 1}, T0)
    kinds = feed(engine, T0, "0") + feed(engine, T0 + timedelta(minutes=10), "1.5")
    assert "emergency_credit" in kinds and state(engine) == "connected"
    kinds = feed(engine, T0 + timedelta(minutes=20), "2.1")
    assert "credit_exhausted" in kinds and state(engine) == "disconnected"


def test_friendly_hours_defer_the_disconnect_until_they_end() -> None:
    engine = prepaid(friendly_hours=FriendlyHours(start="10:00", end="12:00", weekends=False))
    engine.command("top_up", {"id": "a", "sequence": 1, "amount": 1}, T0)
    kinds = feed(engine, T0, "0") + feed(engine, T0 + timedelta(minutes=10), "2")  # 11:10 local
    assert "disconnect_deferred" in kinds and state(engine) == "connected"
    assert not [e for e in engine.tick(T0 + timedelta(minutes=30)).events]
    update = engine.tick(T0 + timedelta(hours=1, minutes=1))  # 12:01 local
    assert [e.kind for e in update.events] == ["breaker_disconnected"]


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("Europe/Copenhagen", datetime(2026, 3, 26, tzinfo=UTC)),  # summer time starts
        ("Europe/Copenhagen", datetime(2026, 10, 22, tzinfo=UTC)),  # and ends
        ("Australia/Lord_Howe", datetime(2026, 4, 2, tzinfo=UTC)),  # a half-hour change
    ],
)
@pytest.mark.parametrize("window", [("01:30", "02:30"), ("22:00", "06:00"), ("02:45", "02:15")])
@pytest.mark.parametrize("weekends", [True, False])
def test_friendly_hours_answer_as_worked_out_afresh_across_offset_changes(
    zone: str, start: datetime, window: tuple[str, str], weekends: bool
) -> None:
    """``friendly`` keeps its answer until the next boundary: every 7 minutes over five
    days (weekend and holiday edges, offset changes) and after the clock went back, it
    answers as a Prepayment asked for the first time."""
    settings = PrepaymentSettings(
        enabled=True,
        friendly_hours=FriendlyHours(start=window[0], end=window[1], weekends=weekends),
    )
    holidays = {date(2026, 3, 30), date(2026, 10, 26), date(2026, 4, 6)}

    def fresh() -> Prepayment:
        return Prepayment("m", settings, PrepaymentState(), ZoneInfo(zone), holidays.__contains__)

    asked = fresh()
    instants = [start + timedelta(minutes=7 * step) for step in range(5 * 24 * 60 // 7)]
    instants += [start + timedelta(hours=30), start + timedelta(hours=2, seconds=1)]  # back
    answers = {asked.friendly(at) for at in instants}
    assert answers == {True, False}
    for at in instants:
        assert asked.friendly(at) == fresh().friendly(at), at


def test_money_credit_uses_tariff_prices_and_standing_charge() -> None:
    engine = prepaid(
        unit="DKK", prices=(2.5, 2.5, 2.5, 2.5), standing_charge_per_day=3.0, warning_levels=()
    )
    engine.command("top_up", {"id": "a", "sequence": 1, "amount": 100}, T0)
    feed(engine, T0, "0")
    feed(engine, T0 + timedelta(hours=1), "2")
    assert engine.state.prepayment.balance == Decimal("95.0")
    feed(engine, T0 + timedelta(days=1), "2")
    assert engine.state.prepayment.balance == Decimal("92.0")


def test_every_state_survives_a_restart() -> None:
    engine = meter()
    for operations, expected in (
        ([], "connected"),
        (["disconnect"], "disconnected"),
        (["disconnect", "reconnect"], "ready_for_reconnection"),
    ):
        engine = meter()
        for operation in operations:
            engine.command(operation, {}, T0)
        again = restarted(engine)
        assert state(again) == expected
        assert again.state.breaker.causes == engine.state.breaker.causes


def test_loss_of_neutral_opens_the_breaker() -> None:
    engine = meter(
        BreakerSettings(enabled=True, smart_disconnect=SmartDisconnectSettings(reconnect="auto"))
    )
    for second in range(8):
        engine.ingest(
            Sample(
                "main",
                "t",
                T0 + timedelta(seconds=second),
                (
                    Reading("1-0:32.7.0", 290.0, "V"),
                    Reading("1-0:52.7.0", 170.0, "V"),
                    Reading("1-0:72.7.0", 230.0, "V"),
                ),
            )
        )
    assert state(engine) == "disconnected" and engine.state.breaker.causes == ["neutral"]
    for second in range(8, 16):
        engine.ingest(
            Sample(
                "main",
                "t",
                T0 + timedelta(seconds=second),
                (
                    Reading("1-0:32.7.0", 230.0, "V"),
                    Reading("1-0:52.7.0", 231.0, "V"),
                    Reading("1-0:72.7.0", 229.0, "V"),
                ),
            )
        )
    assert state(engine) == "connected"


def test_actuator_reports_do_not_move_the_meter_clock() -> None:
    engine = meter()
    feed(engine, T0 + timedelta(minutes=10), "1.0")
    engine.command("disconnect", {}, T0 + timedelta(minutes=10))
    early = T0 + timedelta(minutes=5)  # the actuator's clock lags the meter's
    update = engine.ingest(Sample("main", "relay1", early, (Reading("breaker_feedback", "open"),)))
    assert [e.kind for e in update.events] == ["breaker_confirmed"]
    assert engine.state.last_at == T0 + timedelta(minutes=10)


def test_friendly_hours_can_be_switched_off() -> None:
    engine = prepaid(friendly_hours=FriendlyHours(enabled=False))
    assert not engine.prepayment.friendly(T0.replace(hour=2))
