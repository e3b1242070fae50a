"""Edge events in, energy and power out: the S0 arithmetic, pure (no I/O, no clock of its own).

Energy is exact: ``base + count / pulses_per_kwh`` in Decimal kWh. Power comes from the time
between the last two pulses (as vzlogger and ESPHome's pulse_meter do) and decays once the line
goes quiet: after ``t`` seconds without a pulse, longer than the last interval, the power cannot
be more than one pulse's energy over ``t``, so that bound is shown; after ``timeout`` it is 0.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, Inexact, InvalidOperation, localcontext
from typing import Any, Literal

import msgspec

__all__ = [
    "JOULES_PER_KWH",
    "NS_PER_S",
    "OBIS",
    "Direction",
    "EdgeEvent",
    "Note",
    "PulseMeter",
    "Total",
    "decode_totals",
    "encode_totals",
    "parse_kwh",
]

NS_PER_S = 1_000_000_000
JOULES_PER_KWH = 3_600_000
# A ratio like 600 imp/kWh has no finite decimal expansion; 1 mWh is far below any S0 pulse.
_FRACTION_STEP = Decimal("0.000001")

Direction = Literal["import", "export"]
# (energy register, power register) per direction of flow.
OBIS: dict[Direction, tuple[str, str]] = {
    "import": ("1-0:1.8.0", "1-0:1.7.0"),
    "export": ("1-0:2.8.0", "1-0:2.7.0"),
}


class EdgeEvent(msgspec.Struct, frozen=True):
    """One edge on a requested line, timed by the kernel (CLOCK_MONOTONIC, nanoseconds)."""

    key: str  # which requested line: "pulse" or "direction"
    rising: bool
    timestamp_ns: int
    line_seqno: int  # per line, from 1; a gap means the kernel dropped events


class Note(msgspec.Struct, frozen=True):
    """Something worth an event in the meter's log."""

    kind: str
    detail: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Total(msgspec.Struct):
    """A lifetime register as a known base plus pulses counted since; unknown base = unknown."""

    base_kwh: Decimal | None
    count: int = 0

    def kwh(self, pulses_per_kwh: int) -> Decimal | None:
        """The register value, or None while nobody has said what the meter shows."""
        if self.base_kwh is None:
            return None
        with localcontext() as context:
            context.traps[Inexact] = True
            try:
                counted = Decimal(self.count) / pulses_per_kwh
            except Inexact:
                context.traps[Inexact] = False
                context.rounding = ROUND_FLOOR
                counted = (Decimal(self.count) / pulses_per_kwh).quantize(_FRACTION_STEP)
        return self.base_kwh + counted


class _Rate(msgspec.Struct):
    """Time between pulses of one direction."""

    since_ns: int  # observation start: nothing before it is known
    last_ns: int | None = None
    interval_ns: int | None = None
    zero: bool = False  # the flow is known to go the other way

    def pulse(self, at_ns: int) -> int | None:
        interval = at_ns - self.last_ns if self.last_ns is not None else None
        self.last_ns = at_ns
        if interval is not None and interval > 0:
            self.interval_ns = interval
            self.zero = False
            return interval
        return None

    def reset(self, at_ns: int, *, zero: bool) -> None:
        self.since_ns, self.last_ns, self.interval_ns, self.zero = at_ns, None, None, zero

    def watts(self, now_ns: int, joules_per_pulse: float, timeout_ns: int) -> float | None:
        quiet_ns = now_ns - (self.last_ns if self.last_ns is not None else self.since_ns)
        if quiet_ns >= timeout_ns:
            return 0.0
        if self.interval_ns is None:
            return 0.0 if self.zero else None
        return joules_per_pulse * NS_PER_S / max(self.interval_ns, quiet_ns)


class PulseMeter:
    """Counts S0 pulses from edge events into totals, estimates power, spots lost events."""

    def __init__(  # noqa: PLR0913 - keyword-only options
        self,
        *,
        pulses_per_kwh: int,
        started_ns: int,
        totals: dict[Direction, Total],
        active_rising: bool = False,
        both_edges: bool = False,
        min_pulse_ns: int = 0,
        counts: Direction = "import",
        export_when_high: bool | None = None,
        direction_high: bool = True,
        pulse_active_at_start: bool = False,
        timeout_ns: int = 300 * NS_PER_S,
        max_power_w: float = float("inf"),
    ) -> None:
        self.pulses_per_kwh = pulses_per_kwh
        self.totals = totals
        self.joules_per_pulse = JOULES_PER_KWH / pulses_per_kwh
        self.timeout_ns = timeout_ns
        self.max_power_w = max_power_w
        self.glitches = 0
        self.changed = False  # a total moved since the caller last cleared this
        self._active_rising = active_rising
        self._both_edges = both_edges
        self._min_pulse_ns = min_pulse_ns
        self._counts = counts
        self._export_when_high = export_when_high
        self._direction_high = direction_high
        self._rates: dict[Direction, _Rate] = {d: _Rate(started_ns) for d in OBIS}
        self._seqno: int | None = None
        # A pulse already under way when the line was opened: its start is unknown.
        self._active_since: int | None = None
        self._untimed_active = both_edges and pulse_active_at_start
        self._implausible = False

    @property
    def direction(self) -> Direction:
        """Where a pulse counts now: the direction line's level, or the configured register."""
        if self._export_when_high is None:
            return self._counts
        return "export" if self._direction_high == self._export_when_high else "import"

    def feed(self, events: list[EdgeEvent]) -> list[Note]:
        """Apply edge events in kernel order; what went wrong comes back as notes."""
        notes: list[Note] = []
        for event in events:
            if event.key == "direction":
                self._direction_high = event.rising
                continue
            self._on_pulse_edge(event, notes)
        return notes

    def power_w(self, direction: Direction, now_ns: int) -> float | None:
        """Power in W at ``now_ns``; None while it cannot be known yet (no interval seen)."""
        return self._rates[direction].watts(now_ns, self.joules_per_pulse, self.timeout_ns)

    def set_total(self, direction: Direction, kwh: Decimal) -> None:
        """The meter's display says ``kwh``: count on from there."""
        self.totals[direction] = Total(kwh)
        self.changed = True

    # internals ---------------------------------------------------------------------------------

    def _on_pulse_edge(self, event: EdgeEvent, notes: list[Note]) -> None:
        active = event.rising == self._active_rising
        dropped = event.line_seqno - self._seqno - 1 if self._seqno is not None else 0
        self._seqno = event.line_seqno
        if dropped > 0:
            self._lost(dropped, event, notes)
            if not active:
                return  # its start was among the lost events and is counted there
        if not self._both_edges:
            if active:
                self._pulse(event.timestamp_ns, notes)
            return
        if active:
            self._active_since = event.timestamp_ns
            self._untimed_active = False
            return
        start, self._active_since = self._active_since, None
        if start is None:
            if self._untimed_active:
                self._untimed_active = False
                self._count(1)  # it was under way at start and never counted before
            return
        if event.timestamp_ns - start < self._min_pulse_ns:
            self.glitches += 1
            return
        self._pulse(start, notes)

    def _lost(self, dropped: int, event: EdgeEvent, notes: list[Note]) -> None:
        """The kernel's event buffer overflowed: every lost active edge was a pulse."""
        if self._both_edges:
            # Edges alternate, so the lost ones start with the opposite of the last one seen.
            was_active = self._active_since is not None
            pulses = dropped // 2 + 1 if was_active else (dropped + 1) // 2
            self._active_since = None
        else:
            pulses = dropped
        self._count(pulses)
        # The last pulse's time is unknown: the next interval would span several pulses.
        for rate in self._rates.values():
            rate.reset(event.timestamp_ns, zero=False)
        notes.append(
            Note(
                "pulses_dropped",
                f"the kernel dropped {dropped} edge events (its buffer overflowed); "
                f"{pulses} pulses counted without timing",
                {"dropped_events": dropped, "pulses": pulses, "register": self.direction},
            )
        )

    def _count(self, pulses: int) -> None:
        if pulses:
            self.totals[self.direction].count += pulses
            self.changed = True

    def _pulse(self, at_ns: int, notes: list[Note]) -> None:
        direction = self.direction
        self._count(1)
        other = self._rates["export" if direction == "import" else "import"]
        if not other.zero:
            other.reset(at_ns, zero=True)
        interval = self._rates[direction].pulse(at_ns)
        if interval is None:
            return
        watts = self.joules_per_pulse * NS_PER_S / interval
        if watts <= self.max_power_w:
            self._implausible = False
        elif not self._implausible:  # once per episode, not once per pulse
            self._implausible = True
            notes.append(
                Note(
                    "implausible_pulse_rate",
                    f"pulses {interval / 1e6:.1f} ms apart mean {watts / 1000:.2f} kW, more than "
                    f"the meter can measure ({self.max_power_w / 1000:.2f} kW): interference "
                    "or a wrong pulses_per_kwh?",
                    {"interval_ms": interval / 1e6, "power_w": round(watts, 1)},
                )
            )


class _TotalState(msgspec.Struct, frozen=True):
    base_kwh: str | None
    count: int


class _State(msgspec.Struct, frozen=True):
    pulses_per_kwh: int
    totals: dict[str, _TotalState]


def encode_totals(totals: dict[Direction, Total], pulses_per_kwh: int) -> bytes:
    """The blob persisted for a restart."""
    return msgspec.json.encode(
        _State(
            pulses_per_kwh,
            {
                direction: _TotalState(
                    None if total.base_kwh is None else str(total.base_kwh), total.count
                )
                for direction, total in totals.items()
            },
        )
    )


def decode_totals(blob: bytes | None, pulses_per_kwh: int) -> dict[Direction, Total]:
    """Totals from a persisted blob; pulses counted at another ratio are folded into the base."""
    totals: dict[Direction, Total] = {d: Total(None) for d in OBIS}
    if not blob:
        return totals
    try:
        state = msgspec.json.decode(blob, type=_State)
    except msgspec.DecodeError:
        return totals
    for direction in OBIS:
        saved = state.totals.get(direction)
        if saved is None:
            continue
        base = parse_kwh(saved.base_kwh) if saved.base_kwh is not None else None
        total = Total(base, saved.count)
        if state.pulses_per_kwh != pulses_per_kwh and state.pulses_per_kwh > 0:
            total = Total(total.kwh(state.pulses_per_kwh))
        totals[direction] = total
    return totals


def parse_kwh(value: object) -> Decimal | None:
    """A finite, non-negative kWh value from a string or number; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None
