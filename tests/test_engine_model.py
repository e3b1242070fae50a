"""The 382L model against independent computations over simulated months, with a fake clock."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec
import pytest

from gateway.engine import EngineSettings, MeterEngine, ProfileFlag, Update
from gateway.engine.clock import period_ends
from gateway.engine.settings import (
    DebitingSettings,
    DemandSettings,
    LimitSettings,
    ProfileSettings,
    SwitchPoint,
    TariffSeason,
    TariffSettings,
)
from gateway.engine.tariff import TariffSchedule, easter_sunday
from gateway.errors import CommandError
from gateway.model import Reading, Sample
from tests.engine_support import Point, sample, synthetic, value_at

CPH = ZoneInfo("Europe/Copenhagen")
WINTER = TariffSeason(
    start="10-01",
    weekday=(
        SwitchPoint(at="00:00", tariff=1),
        SwitchPoint(at="06:00", tariff=2),
        SwitchPoint(at="17:00", tariff=3),
        SwitchPoint(at="21:00", tariff=1),
    ),
    saturday=(SwitchPoint(at="00:00", tariff=4),),
)
SUMMER = TariffSeason(
    start="04-01",
    weekday=(
        SwitchPoint(at="00:00", tariff=1),
        SwitchPoint(at="02:30", tariff=2),
        SwitchPoint(at="22:00", tariff=1),
    ),
    holiday=(SwitchPoint(at="00:00", tariff=4),),
)
TARIFFS = TariffSettings(
    seasons=(WINTER, SUMMER), holidays=("12-25",), movable_holidays=("easter_monday",)
)


def engine(**overrides: object) -> MeterEngine:
    options: dict[str, object] = {"tariff": TARIFFS, **overrides}
    settings = msgspec.structs.replace(EngineSettings(), **options)
    return MeterEngine("main", settings=settings, zone=CPH)


def run(meter: MeterEngine, points: list[Point]) -> Update:
    total = Update("main")
    for point in points:
        update = meter.ingest(sample(point))
        total.registers.update(update.registers)
        total.events += update.events
        total.profile += update.profile
        total.analysis += update.analysis
        total.billing += update.billing
    return total


def value(meter: MeterEngine, code: str) -> Decimal:
    return Decimal(meter.registers[code].value)


# ------------------------------------------------------------------------------- tariff schedule


def test_tariff_schedule_days_seasons_and_holidays() -> None:
    schedule = TariffSchedule(TARIFFS, CPH)

    def at(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
        return datetime(year, month, day, hour, minute, tzinfo=CPH)

    assert schedule.active(at(2026, 1, 14, 5, 59)) == 1  # winter weekday
    assert schedule.active(at(2026, 1, 14, 6, 0)) == 2
    assert schedule.active(at(2026, 1, 14, 18, 0)) == 3
    assert schedule.active(at(2026, 1, 17, 18, 0)) == 4  # Saturday program
    assert schedule.active(at(2026, 1, 18, 18, 0)) == 4  # Sunday falls back to Saturday
    assert schedule.active(at(2026, 12, 25, 18, 0)) == 4  # a Friday, but a holiday
    assert easter_sunday(2026) == date(2026, 4, 5)
    assert schedule.active(at(2026, 4, 6, 12, 0)) == 4  # Easter Monday: holiday program
    assert schedule.active(at(2026, 4, 7, 12, 0)) == 2  # summer weekday
    assert schedule.active(at(2026, 1, 14, 0, 30)) == 1


def test_tariff_held_between_switches_answers_as_a_fresh_schedule_would() -> None:
    held = TariffSchedule(TARIFFS, CPH)
    # Every 7 minutes through a week with a weekend, a holiday eve and a season start, the
    # schedule that keeps its last answer says what one asked afresh says.
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # Friday before the spring clock change
    for step in range(0, 7 * 24 * 60, 7):
        at = start + timedelta(minutes=step)
        assert held.active(at) == TariffSchedule(TARIFFS, CPH).active(at), at


def test_tariff_switch_in_the_spring_gap_happens_when_the_gap_ends() -> None:
    schedule = TariffSchedule(TARIFFS, CPH)
    # 2026-03-29 02:00 CET jumps to 03:00 CEST; that Sunday is still winter: use the summer
    # weekday program on a Monday in the gap instead by moving DST: test 2027-03-28 (Sunday).
    # The summer program's 02:30 switch on 2026-03-29 does not exist in Copenhagen.
    summer_only = TariffSchedule(TariffSettings(seasons=(SUMMER,)), CPH)
    gap_end = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert summer_only.active(gap_end - timedelta(seconds=1)) == 1
    assert summer_only.active(gap_end) == 2
    assert summer_only.next_change(datetime(2026, 3, 29, 0, 0, tzinfo=UTC)) == gap_end
    assert schedule.active(gap_end) in (1, 2, 3, 4)


def test_tariff_does_not_flip_back_in_the_repeated_autumn_hour() -> None:
    summer_only = TariffSchedule(TariffSettings(seasons=(SUMMER,)), CPH)
    first_0230 = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second_0215 = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET, the repeated hour
    assert summer_only.active(first_0230 - timedelta(seconds=1)) == 1
    assert summer_only.active(first_0230) == 2
    assert summer_only.active(second_0215) == 2, "the switch happened once, at the first 02:30"


# ------------------------------------------------------------------------------- a simulated year


@pytest.fixture(scope="module")
def year() -> tuple[MeterEngine, list[Point], Update]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = list(synthetic(start, start + timedelta(days=366), seed=2026, min_s=60, max_s=1200))
    # A meter that reports every few minutes, like a wM-Bus meter: no gap is an outage.
    meter = engine(limits=LimitSettings(max_sample_gap_s=1800))
    return meter, points, run(meter, points)


def test_tariff_registers_sum_exactly_to_the_total(
    year: tuple[MeterEngine, list[Point], Update],
) -> None:
    meter, points, _ = year
    tariffs = [value(meter, f"1-0:1.8.{t}") for t in range(1, 5)]
    assert sum(tariffs) == points[-1].a_plus - points[0].a_plus
    assert all(t > 0 for t in tariffs), "a year with this schedule uses all four tariffs"
    reactive = sum(value(meter, f"1-0:3.8.{t}") for t in range(1, 5))
    assert reactive == points[-1].r_plus


def test_profile_intervals_are_contiguous_and_sum_to_register_differences(
    year: tuple[MeterEngine, list[Point], Update],
) -> None:
    _, points, update = year
    rows = update.profile
    assert all(a.end == b.start for a, b in itertools.pairwise(rows))
    assert {row.end - row.start for row in rows} == {timedelta(minutes=15)}
    first, last = rows[0].start, rows[-1].end
    whole = rows
    for attr, code in (("a_plus", "1-0:1.8.0"), ("a_minus", "1-0:2.8.0")):
        total = sum(row.values[code] for row in whole)
        assert total == value_at(points, last, attr) - value_at(points, first, attr)
    assert first == points[0].at, "the first sample was on a boundary: no partial interval"
    assert not any(row.flags for row in whole)


def test_peak_power_and_billing_match_a_brute_force_computation(
    year: tuple[MeterEngine, list[Point], Update],
) -> None:
    meter, points, update = year
    records = update.billing
    assert [r.number for r in records] == list(range(1, 13))
    # The engine only counts whole demand periods: the first starts at the first boundary.
    first = points[0].at + timedelta(seconds=-points[0].at.timestamp() % 900)
    accumulated = Decimal(0)
    period_start = points[0].at
    for record in records:
        best = Decimal(0)
        end = first + timedelta(minutes=15)
        while end <= record.at:
            if end > period_start:
                start = end - timedelta(minutes=15)
                watts = (value_at(points, end) - value_at(points, start)) * 4000
                best = max(best, watts.quantize(Decimal("0.1")))
            end += timedelta(minutes=15)
        peak = record.values["1-0:1.6.0"]
        assert Decimal(peak["value"]) == best, f"debiting period {record.number}"
        accumulated += best
        assert Decimal(record.values["1-0:1.2.0"]) == accumulated
        assert record.values["1-0:1.8.0"] == value_at(points, record.at)
        assert record.values["1-0:2.8.0"] == value_at(points, record.at, "a_minus")
        local = record.at.astimezone(CPH)
        assert (local.day, local.hour, local.minute) == (1, 0, 0)
        assert record.values["date"] == local.date().isoformat()
        assert record.values["0-0:0.1.0"] == record.number
        period_start = record.at
    assert value(meter, "0-0:0.1.0") == 12


# ------------------------------------------------------------------------------- restarts


def restored(first: MeterEngine) -> MeterEngine:
    """A new engine from what ``first`` would persist: its registers and state blob."""
    return MeterEngine(
        "main",
        list(first.registers.values()),
        settings=first.settings,
        zone=CPH,
        state=first.state_blob(),
    )


def split_run(points: list[Point], cut: int, gap: timedelta = timedelta(0)) -> Update:
    """Run to ``cut``, persist, restore into a new engine, continue (optionally after a gap)."""
    first = engine()
    total = run(first, points[:cut])
    second = restored(first)
    shifted = [Point(p.at + gap, p.a_plus, p.a_minus, p.r_plus) for p in points[cut:]]
    rest = run(second, shifted)
    total.profile += rest.profile
    total.billing += rest.billing
    total.events += rest.events
    return total


def test_a_restart_mid_period_changes_nothing() -> None:
    start = datetime(2026, 1, 31, 22, 0, tzinfo=UTC)  # the debiting stop is at 23:00 UTC
    points = list(synthetic(start, start + timedelta(hours=3), seed=7, min_s=30, max_s=200))
    cut = next(i for i, p in enumerate(points) if p.at > start + timedelta(minutes=52))
    whole = run(engine(), points)
    resumed = split_run(points, cut)
    assert resumed.profile == whole.profile
    assert [(r.number, r.values) for r in resumed.billing] == [
        (r.number, r.values) for r in whole.billing
    ]


def test_a_gap_across_a_debiting_stop_is_filled_and_flagged() -> None:
    start = datetime(2026, 1, 31, 21, 0, tzinfo=UTC)
    points = list(synthetic(start, start + timedelta(hours=2), seed=9, min_s=30, max_s=120))
    cut = next(i for i, p in enumerate(points) if p.at > start + timedelta(minutes=100))
    # The gateway is down for 3 hours over the 23:00 UTC stop; the meter keeps counting.
    result = split_run(points, cut, gap=timedelta(hours=3))
    rows = result.profile
    assert all(a.end == b.start for a, b in itertools.pairwise(rows)), "no hole"
    estimated = [r for r in rows if r.flags & ProfileFlag.ESTIMATED]
    assert len(estimated) >= 12
    assert all(r.flags & ProfileFlag.POWER_OUTAGE for r in estimated)
    (record,) = result.billing
    assert record.estimated
    assert record.at == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------- guards and events


def test_meter_tariff_registers_win_over_splitting() -> None:
    meter = engine()
    at = datetime(2026, 1, 14, 12, tzinfo=UTC)
    for minutes, t1, t2 in ((0, "10.000", "5.000"), (10, "10.500", "5.000")):
        meter.ingest(
            Sample(
                "main",
                "p1",
                at + timedelta(minutes=minutes),
                (
                    Reading("1-0:1.8.0", Decimal(t1) + Decimal(t2), "kWh"),
                    Reading("1-0:1.8.1", Decimal(t1), "kWh"),
                    Reading("1-0:1.8.2", Decimal(t2), "kWh"),
                ),
            )
        )
    assert value(meter, "1-0:1.8.1") == Decimal("10.500")
    assert value(meter, "1-0:1.8.2") == Decimal("5.000")


def test_implausible_jump_and_decrease_are_reported_once_per_episode() -> None:
    meter = engine()
    t = datetime(2026, 1, 14, 12, tzinfo=UTC)
    kinds: list[str] = []
    for seconds, kwh in (
        (0, "100"),
        (10, "99"),
        (20, "98"),
        (30, "900"),
        (40, "901"),
        (50, "100.01"),
    ):
        update = meter.ingest(
            Sample(
                "main",
                "x",
                t + timedelta(seconds=seconds),
                (Reading("1-0:1.8.0", Decimal(kwh), "kWh"),),
            )
        )
        kinds += [
            e.kind for e in update.events if e.kind in ("register_decrease", "implausible_jump")
        ]
    assert kinds == ["register_decrease", "implausible_jump"]
    assert value(meter, "1-0:1.8.0") == Decimal("100.01")
    meter.command("accept_registers", {}, t)
    meter.ingest(
        Sample("main", "x", t + timedelta(minutes=2), (Reading("1-0:1.8.0", Decimal(5), "kWh"),))
    )
    assert value(meter, "1-0:1.8.0") == Decimal(5), (
        "after accept_registers a meter exchange is taken"
    )


def test_clock_set_back_is_an_event_and_flags_the_interval() -> None:
    meter = engine()
    t = datetime(2026, 1, 14, 12, 1, tzinfo=UTC)
    points = [
        Point(t + timedelta(minutes=m), Decimal(m), Decimal(0), Decimal(0)) for m in range(0, 40, 2)
    ]
    run(meter, points)
    back = Point(t + timedelta(minutes=10), Decimal(41), Decimal(0), Decimal(0))
    update = meter.ingest(sample(back))
    assert [e.kind for e in update.events] == ["clock_adjusted"]
    later = run(
        meter,
        [
            Point(back.at + timedelta(minutes=m), Decimal(41 + m), Decimal(0), Decimal(0))
            for m in range(2, 40, 2)
        ],
    )
    assert later.profile[0].flags & ProfileFlag.CLOCK_ADJUSTED


def test_power_threshold_counts_demand_periods() -> None:
    meter = engine(demand=DemandSettings(period_min=15, power_threshold_w=5000))
    t = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
    # 8 kW for 30 minutes, then 1 kW.
    points = [
        Point(t + timedelta(minutes=m), Decimal(m * 8000 // 60) / 1000, Decimal(0), Decimal(0))
        for m in range(0, 31)
    ]
    points += [
        Point(
            t + timedelta(minutes=m),
            points[-1].a_plus + Decimal((m - 30) * 1000 // 60) / 1000,
            Decimal(0),
            Decimal(0),
        )
        for m in range(31, 61)
    ]
    update = run(meter, points)
    assert value(meter, "power_threshold_counter") == 2
    assert [e.kind for e in update.events].count("power_threshold_exceeded") == 2
    assert value(meter, "1-0:1.6.0") == Decimal("8000.0")
    assert value(meter, "1-0:1.6.2") == Decimal("8000.0")  # 13:00 on a winter weekday: T2


def test_debiting_stop_by_command_and_external_tariff() -> None:
    meter = engine(
        tariff=TariffSettings(source="command"), debiting=DebitingSettings(period="none")
    )
    t = datetime(2026, 5, 5, 8, tzinfo=UTC)
    run(meter, [Point(t, Decimal(1), Decimal(0), Decimal(0))])
    meter.command("set_tariff", {"tariff": 3}, t)
    run(meter, [Point(t + timedelta(minutes=1), Decimal(2), Decimal(0), Decimal(0))])
    assert value(meter, "1-0:1.8.3") == Decimal(1)
    update, result = meter.command("debiting_stop", {}, t + timedelta(minutes=2))
    assert result["number"] == 1
    assert update.billing[0].values["1-0:1.8.3"] == Decimal(1)
    with pytest.raises(CommandError, match=r"<= 4 - at `args\.tariff`"):
        meter.command("set_tariff", {"tariff": 9}, t)
    with pytest.raises(CommandError, match="schedule"):
        engine().command("set_tariff", {"tariff": 2}, t)


def test_profile_retention_defaults_to_the_data_sheet_and_cannot_be_lower() -> None:
    assert ProfileSettings(interval_min=60, channels="A+").depth_days == 2388
    assert ProfileSettings(interval_min=5, channels="A+A-R+R-").depth_days == 61
    with pytest.raises(ValueError, match="at least"):
        ProfileSettings(interval_min=5, channels="A+A-R+R-", retention_days=30)


def test_power_only_samples_do_not_stand_in_for_energy_at_a_boundary() -> None:
    meter = engine()
    t = datetime(2026, 1, 14, 12, 10, tzinfo=UTC)
    meter.ingest(sample(Point(t, Decimal("10.000"), Decimal(0), Decimal(0))))
    # A power reading after the 12:15 boundary must not freeze A+ there at its old value.
    meter.ingest(Sample("main", "x", t + timedelta(minutes=6), (Reading("1-0:1.7.0", 900, "W"),)))
    update = meter.ingest(
        sample(Point(t + timedelta(minutes=10), Decimal("11.000"), Decimal(0), Decimal(0)))
    )
    (row,) = update.profile
    assert row.end == datetime(2026, 1, 14, 12, 15, tzinfo=UTC)
    assert row.values["1-0:1.8.0"] == Decimal("0.500")  # half of the kWh, by interpolation


def test_meter_alarms_are_events_on_change_only() -> None:
    meter = engine()
    t = datetime(2026, 1, 14, 12, tzinfo=UTC)
    kinds: list[str] = []
    for minute, flag in enumerate(("0", "0", "1", "1", "0")):
        update = meter.ingest(
            Sample("main", "x", t + timedelta(minutes=minute), (Reading("alarm_magnetic", flag),))
        )
        kinds += [e.kind for e in update.events]
    assert kinds == ["meter_alarm", "meter_alarm_cleared"]


def test_a_restart_mid_interval_keeps_the_analysis_means() -> None:
    start = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)
    points = list(synthetic(start, start + timedelta(hours=1), seed=3, min_s=20, max_s=90))
    samples = [
        sample(point, Reading("1-0:32.7.0", 228.0 + index % 7, "V"))
        for index, point in enumerate(points)
    ]
    cut = next(i for i, p in enumerate(points) if p.at > start + timedelta(minutes=22))

    def analysis(meter: MeterEngine, batch: list[Sample]) -> list[object]:
        return [row for s in batch for row in meter.ingest(s).analysis]

    whole = analysis(engine(), samples)
    first = engine()
    rows = analysis(first, samples[:cut])
    second = restored(first)
    rows += analysis(second, samples[cut:])
    assert len(whole) >= 3  # an hour of 15-minute intervals, one of them cut by the restart
    assert rows == whole


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        ("Europe/Copenhagen", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # an hour forward
        ("Europe/Copenhagen", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),  # and back
        ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),  # half an hour
        ("Pacific/Chatham", datetime(2026, 4, 4, 14, 0, tzinfo=UTC)),  # at :45 local
    ],
)
@pytest.mark.parametrize("minutes", [15, 60])
def test_profile_intervals_end_where_the_local_clock_says_across_offset_changes(
    zone: str, change: datetime, minutes: Literal[15, 60]
) -> None:
    """``cross`` takes a period's end as known while a sample stays inside it: around an
    offset change, every interval it closes ends where ``period_ends`` says, worked out
    afresh from the samples on either side."""
    meter = MeterEngine(
        "main",
        settings=EngineSettings(profile=ProfileSettings(interval_min=minutes, channels="A+")),
        zone=ZoneInfo(zone),
    )
    closed: list[datetime] = []
    expected: list[datetime] = []
    previous = None
    for step in range(300):
        at = change - timedelta(hours=4) + timedelta(seconds=97 * step)
        energy = Reading("1-0:1.8.0", Decimal(step) / 1000, "kWh")
        closed += [row.end for row in meter.ingest(Sample("main", "t", at, (energy,))).profile]
        if previous is not None:
            expected += period_ends(previous, at, minutes, ZoneInfo(zone))
        previous = at
    assert len(expected) >= 4 * 60 // minutes
    assert closed == expected
