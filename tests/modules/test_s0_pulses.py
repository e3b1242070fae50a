"""S0 arithmetic: exact energy from the count, power from intervals, decay, lost events."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.s0.pulses import (
    NS_PER_S,
    Direction,
    EdgeEvent,
    PulseMeter,
    Total,
    decode_totals,
    encode_totals,
    parse_kwh,
)

MS = 1_000_000
WIDTH_NS = 30 * MS
# 105 A on three phases at 230 V: 72.45 kW, 20.125 pulses/s at 1000 imp/kWh.
BURST_W = 105 * 3 * 230
BURST_PERIOD_NS = 3600 * NS_PER_S / BURST_W


class Line:
    """Edges of one pulse line as the kernel numbers them, for a meter under test."""

    def __init__(self, key: str = "pulse") -> None:
        self.key = key
        self.seqno = 0

    def edge(self, rising: bool, at_ns: int) -> EdgeEvent:
        self.seqno += 1
        return EdgeEvent(self.key, rising, at_ns, self.seqno)

    def pulses(self, starts: list[int], width_ns: int = WIDTH_NS) -> list[EdgeEvent]:
        events = []
        for start in starts:
            events += [self.edge(False, start), self.edge(True, start + width_ns)]
        return events


def meter(base: str | None = "1000", *, both_edges: bool = True, **kwargs: object) -> PulseMeter:
    totals = {
        "import": Total(None if base is None else Decimal(base)),
        "export": Total(Decimal("5")),
    }
    options: dict[str, object] = {
        "pulses_per_kwh": 1000,
        "started_ns": 0,
        "totals": totals,
        "both_edges": both_edges,
        "min_pulse_ns": 20 * MS if both_edges else 0,
        "max_power_w": 105 * 230 * 1.1 * 3,
    }
    options.update(kwargs)
    return PulseMeter(**options)  # type: ignore[arg-type]


def every(period_ns: float, count: int, start_ns: int = 0) -> list[int]:
    return [start_ns + round(i * period_ns) for i in range(count)]


def test_one_hertz_is_3600_w_and_each_pulse_one_wh() -> None:
    m, line = meter(), Line()
    assert m.feed(line.pulses(every(NS_PER_S, 11, 10 * NS_PER_S))) == []
    assert m.totals["import"].kwh(1000) == Decimal("1000.011")
    assert m.power_w("import", 20 * NS_PER_S + WIDTH_NS) == 3600.0


def test_a_105_a_three_phase_burst_is_exact_and_plausible() -> None:
    m, line = meter("12345.678"), Line()
    starts = every(BURST_PERIOD_NS, 20_125, NS_PER_S)  # 1000 s at 72.45 kW: 20.125 kWh
    notes = m.feed(line.pulses(starts))
    assert notes == []
    assert m.totals["import"].kwh(1000) == Decimal("12345.678") + Decimal("20.125")
    assert round(m.power_w("import", starts[-1] + WIDTH_NS) or 0, 1) == BURST_W
    assert m.glitches == 0


def test_single_edge_mode_counts_every_active_edge() -> None:
    m, line = meter(both_edges=False), Line()
    m.feed([line.edge(False, t) for t in every(BURST_PERIOD_NS, 2000)])
    assert m.totals["import"].kwh(1000) == Decimal("1002")
    assert round(m.power_w("import", 2000 * 49 * MS) or 0, 1) == BURST_W


def test_rising_edge_meters_are_timed_from_the_rising_edge() -> None:
    m = meter(active_rising=True)
    line = Line()
    events = []
    for start in every(NS_PER_S / 2, 5):
        events += [line.edge(True, start), line.edge(False, start + WIDTH_NS)]
    m.feed(events)
    assert m.totals["import"].count == 5
    assert m.power_w("import", 2 * NS_PER_S + WIDTH_NS) == 7200.0


def test_power_decays_after_the_last_interval_and_returns() -> None:
    m, line = meter(), Line()
    starts = every(NS_PER_S, 10)
    m.feed(line.pulses(starts))
    last = starts[-1]
    assert m.power_w("import", last + NS_PER_S // 2) == 3600.0  # within the last interval
    for quiet_s in (2, 10, 60, 299):
        bound = 3600.0 / quiet_s
        power = m.power_w("import", last + quiet_s * NS_PER_S)
        assert power == pytest.approx(bound)
    assert m.power_w("import", last + 300 * NS_PER_S) == 0.0  # power_timeout_s
    assert m.power_w("import", last + 7200 * NS_PER_S) == 0.0
    # Two hours later: the first pulse tells the average over the gap, the second the rate.
    back = last + 7200 * NS_PER_S
    m.feed(line.pulses([back]))
    assert m.power_w("import", back + WIDTH_NS) == pytest.approx(0.5)
    m.feed(line.pulses([back + NS_PER_S // 4]))
    assert m.power_w("import", back + NS_PER_S // 4 + WIDTH_NS) == 14400.0
    assert m.totals["import"].count == 12


def test_nothing_is_known_before_the_first_interval() -> None:
    m, line = meter(), Line()
    assert m.power_w("import", NS_PER_S) is None
    m.feed(line.pulses([2 * NS_PER_S]))
    assert m.power_w("import", 2 * NS_PER_S + WIDTH_NS) is None
    assert m.power_w("import", 400 * NS_PER_S) == 0.0  # quiet for longer than the timeout
    fresh = meter()
    assert fresh.power_w("import", 300 * NS_PER_S) == 0.0


def test_unknown_base_means_no_total_but_pulses_are_kept() -> None:
    m, line = meter(None), Line()
    m.feed(line.pulses(every(NS_PER_S, 3)))
    assert m.totals["import"].kwh(1000) is None
    assert m.totals["import"].count == 3
    m.set_total("import", Decimal("777.5"))
    assert m.totals["import"].kwh(1000) == Decimal("777.5")
    m.feed(line.pulses([5 * NS_PER_S]))
    assert m.totals["import"].kwh(1000) == Decimal("777.501")


def test_short_pulses_are_glitches_and_not_counted() -> None:
    m, line = meter(), Line()
    events = line.pulses([0, NS_PER_S], WIDTH_NS) + line.pulses([NS_PER_S + 100 * MS], 2 * MS)
    events += line.pulses([2 * NS_PER_S], 21 * MS)
    m.feed(events)
    assert m.totals["import"].count == 3
    assert m.glitches == 1
    assert m.power_w("import", 2 * NS_PER_S + 30 * MS) == 3600.0


def test_a_pulse_under_way_at_start_is_counted_once_on_release() -> None:
    m = meter(pulse_active_at_start=True)
    line = Line()
    m.feed([line.edge(True, 10 * MS)])
    assert m.totals["import"].count == 1
    m.feed([line.edge(True, 20 * MS)])  # a second release without a start counts nothing
    assert m.totals["import"].count == 1


@pytest.mark.parametrize(
    ("lost", "pulses"),
    [
        ((2, 3), 1),  # a whole pulse (its start and end) between two pulses
        ((1, 2), 2),  # the end of pulse 1 and the start of pulse 2
        ((1,), 1),  # the end of pulse 1
        ((2,), 1),  # the start of pulse 2
        ((1, 2, 3, 4, 5), 3),
    ],
)
def test_lost_events_are_counted_as_the_pulses_they_were(
    lost: tuple[int, ...], pulses: int
) -> None:
    """Edges alternate: which were lost follows from the last and next ones seen."""
    m, line = meter(), Line()
    events = line.pulses(every(NS_PER_S, 5))  # 10 edges, seqno 1..10
    kept = [e for i, e in enumerate(events) if i not in lost]
    notes = m.feed(kept)
    assert m.totals["import"].count == 5
    assert [n.kind for n in notes] == ["pulses_dropped"]
    assert notes[0].data["dropped_events"] == len(lost)
    assert notes[0].data["pulses"] == pulses


def test_lost_events_in_single_edge_mode_are_one_pulse_each() -> None:
    m, line = meter(both_edges=False), Line()
    events = [line.edge(False, t) for t in every(NS_PER_S, 10)]
    notes = m.feed(events[:3] + events[7:8])
    assert m.totals["import"].count == 8
    assert notes[0].data == {"dropped_events": 4, "pulses": 4, "register": "import"}
    # The time of the last counted pulse is unknown, so no interval spans the gap ...
    assert m.power_w("import", 7 * NS_PER_S) is None
    # ... and the next two pulses give the rate again.
    m.feed(events[8:])
    assert m.power_w("import", 9 * NS_PER_S) == 3600.0
    assert m.totals["import"].count == 10


def test_an_impossible_rate_is_reported_once_per_episode() -> None:
    m, line = meter(), Line()
    fast = every(40 * MS, 50)  # 90 kW on a 3 x 105 A meter
    notes = m.feed(line.pulses(fast, 20 * MS))
    assert [n.kind for n in notes] == ["implausible_pulse_rate"]
    assert notes[0].data["power_w"] == 90000.0
    assert m.totals["import"].count == 50  # counted all the same: the meter may be right
    calm = every(NS_PER_S, 3, NS_PER_S * 10)
    assert m.feed(line.pulses(calm)) == []
    assert [n.kind for n in m.feed(line.pulses(every(40 * MS, 3, 20 * NS_PER_S), 20 * MS))] == [
        "implausible_pulse_rate"
    ]


def test_the_direction_line_routes_pulses_to_export() -> None:
    m = meter(export_when_high=False, direction_high=True)
    pulse, direction = Line(), Line("direction")
    m.feed(pulse.pulses(every(NS_PER_S, 4)))
    assert m.power_w("import", 4 * NS_PER_S) == 3600.0
    m.feed([direction.edge(False, 4 * NS_PER_S)])  # low: export
    m.feed(pulse.pulses(every(NS_PER_S // 2, 3, 5 * NS_PER_S)))
    assert m.totals["import"].kwh(1000) == Decimal("1000.004")
    assert m.totals["export"].kwh(1000) == Decimal("5.003")
    assert m.power_w("export", 6 * NS_PER_S + WIDTH_NS) == 7200.0
    assert m.power_w("import", 6 * NS_PER_S + WIDTH_NS) == 0.0  # the flow turned


def test_ratios_without_a_finite_decimal_are_floored_to_a_milliwatt_hour() -> None:
    assert Total(Decimal("1"), 1).kwh(600) == Decimal("1.001666")
    assert Total(Decimal("1"), 600).kwh(600) == Decimal("2")
    assert Total(Decimal("0"), 3).kwh(800) == Decimal("0.00375")
    assert Total(None, 3).kwh(1000) is None


def test_totals_round_trip_and_fold_a_changed_ratio() -> None:
    totals: dict[Direction, Total] = {
        "import": Total(Decimal("12.345"), 1500),
        "export": Total(None, 7),
    }
    blob = encode_totals(totals, 1000)
    back = decode_totals(blob, 1000)
    assert back["import"] == totals["import"] and back["export"] == totals["export"]
    folded = decode_totals(blob, 500)
    assert folded["import"] == Total(Decimal("13.845"), 0)
    assert decode_totals(b"not json", 1000)["import"] == Total(None)
    assert decode_totals(None, 1000)["export"] == Total(None)


def test_parse_kwh_takes_decimal_strings_and_numbers_only() -> None:
    assert parse_kwh("12345.678") == Decimal("12345.678")
    assert parse_kwh(" 7 ") == Decimal("7")
    assert parse_kwh(2.5) == Decimal("2.5")
    for bad in ("-1", "NaN", "Infinity", "12,5", None, True, [1]):
        assert parse_kwh(bad) is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(50 * MS, 600 * NS_PER_S), min_size=2, max_size=200),
    st.integers(0, 10**9),
)
def test_any_train_counts_exactly_and_shows_its_last_interval(
    gaps: list[int], base_wh: int
) -> None:
    m, line = meter(str(Decimal(base_wh) / 1000), timeout_ns=10**15), Line()
    starts = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    m.feed(line.pulses(starts))
    assert m.totals["import"].kwh(1000) == (Decimal(base_wh) + len(gaps)) / 1000
    last_interval = starts[-1] - starts[-2]
    power = m.power_w("import", starts[-1] + WIDTH_NS)
    expected = 3600 * NS_PER_S / max(last_interval, WIDTH_NS)
    assert power == pytest.approx(expected)
