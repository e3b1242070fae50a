"""Supply monitors: over/under voltage, phase loss, loss of neutral.

Loss of neutral: with the neutral broken, the star point of a three-phase four-wire supply
floats towards the most heavily loaded phase. That phase's voltage falls while another's rises
towards 400 V. Ordinary over- or undervoltage moves all phases the same way, and a heavy load
on one phase only sags that phase: neither pushes one phase above +10 % while another is below
-10 %. So the rule is: one phase above ``over_v``, another below ``under_v``, the spread larger
than ``neutral_spread_v``, held for ``hold_s`` (so a motor start does not trip it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.engine.settings import LimitSettings
from gateway.model import Event

__all__ = ["VOLTAGE_CODES", "SupplyMonitor"]

VOLTAGE_CODES = ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0")


@dataclass(slots=True)
class _Condition:
    """A condition that must hold for ``hold_s`` before it counts, and clear the same way."""

    active: bool = False
    pending_since: datetime | None = None

    def update(self, now: datetime, observed: bool, hold_s: float) -> bool | None:
        """True/False when the condition starts/ends now, None when nothing changed."""
        if observed == self.active:
            self.pending_since = None
            return None
        if self.pending_since is None:
            self.pending_since = now
        if (now - self.pending_since).total_seconds() >= hold_s:
            self.active, self.pending_since = observed, None
            return observed
        return None


@dataclass(slots=True)
class SupplyMonitor:
    """Turns per-phase voltages into events."""

    meter: str
    limits: LimitSettings
    conditions: dict[str, _Condition] = field(default_factory=dict)
    # No condition active or pending after the last sample: a sample whose voltages are all
    # inside the normal band then changes nothing, and is settled without the state machines.
    quiet: bool = field(default=False, repr=False)

    def check(self, now: datetime, values: dict[str, float]) -> list[Event]:
        """Events caused by the voltages in one sample."""
        voltages = [values[code] for code in VOLTAGE_CODES if code in values]
        if not voltages:
            return []
        limits = self.limits
        if self.quiet:
            # Normal: observed as neither lost, under nor over on any phase; nor floating,
            # which needs a phase over ``over_v``.
            low = max(limits.under_v, limits.phase_loss_v)
            if all(low <= volts <= limits.over_v for volts in voltages):
                return []
        events = self._check(now, voltages, values)
        self.quiet = all(
            not condition.active and condition.pending_since is None
            for condition in self.conditions.values()
        )
        return events

    def _check(self, now: datetime, voltages: list[float], values: dict[str, float]) -> list[Event]:
        limits = self.limits
        events: list[Event] = []
        for phase, code in enumerate(VOLTAGE_CODES, start=1):
            if code not in values:
                continue
            volts = values[code]
            others_alive = any(v > limits.under_v for v in voltages if v is not volts)
            lost = volts < limits.phase_loss_v and others_alive
            for kind, observed in (
                ("phase_loss", lost),
                ("overvoltage", volts > limits.over_v),
                ("undervoltage", limits.phase_loss_v <= volts < limits.under_v),
            ):
                change = self._change(now, _PHASE_KEYS[kind, phase], observed)
                if change is not None:
                    detail = f"L{phase} at {volts:.1f} V"
                    events.append(self._event(now, kind, change, detail, phase=phase))
        if len(voltages) == 3:  # noqa: PLR2004 - three phases
            spread = max(voltages) - min(voltages)
            floating = (
                max(voltages) > limits.over_v
                and min(voltages) < limits.under_v
                and spread > limits.neutral_spread_v
            )
            change = self._change(now, "neutral", floating)
            if change is not None:
                detail = "phase voltages " + " / ".join(f"{v:.1f}" for v in voltages) + " V"
                events.append(self._event(now, "loss_of_neutral", change, detail))
        return events

    def _change(self, now: datetime, key: str, observed: bool) -> bool | None:
        # Runs three times per phase per sample: the event text is only made on a change, and
        # a condition that holds as it was (nearly always) is settled here.
        condition = self.conditions.get(key)
        if condition is None:
            condition = self.conditions[key] = _Condition()
        elif observed == condition.active and condition.pending_since is None:
            return None
        return condition.update(now, observed, self.limits.hold_s)

    def _event(self, now: datetime, kind: str, started: bool, detail: str, **data: Any) -> Event:
        return Event(self.meter, now, kind if started else f"{kind}_cleared", detail, data)


_PHASE_KEYS = {
    (kind, phase): f"{kind}:L{phase}"
    for kind in ("phase_loss", "overvoltage", "undervoltage")
    for phase in (1, 2, 3)
}
