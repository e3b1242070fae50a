"""The breaker's drivers: smart disconnect (load, loss of neutral) and prepayment.

Glue between the pure breaker and prepayment machines and the meter's registers and events.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.engine.book import BREAKER_ACTUATOR, BREAKER_STATE, CREDIT, Book
from gateway.engine.breaker import Action
from gateway.engine.update import Update
from gateway.errors import CommandError
from gateway.model import Event

__all__ = ["SMART_CODES", "Protection"]

# What smart disconnect reads: the total power and the phase currents.
SMART_POWER, SMART_CURRENTS = "1-0:1.7.0", ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0")
SMART_CODES = (SMART_POWER, *SMART_CURRENTS)


class Protection:
    """Drives the breaker from the meter's readings, prepayment and commands."""

    def __init__(self, meter: Book) -> None:
        self._m = meter
        # The settings this runs on every sample, read once: settings are frozen, and a meter
        # given new ones is a new engine (gateway/meters.py).
        settings = meter.settings
        self._breaker_on = settings.breaker.enabled
        self._smart = settings.breaker.smart_disconnect
        self._prepaid_on = settings.prepayment.enabled
        self._credit_unit = settings.prepayment.unit

    def observe(
        self,
        at: datetime,
        numbers: dict[str, float],
        monitor_events: list[Event],
        update: Update,
    ) -> None:
        """Smart disconnect (load, loss of neutral) and prepayment drive the breaker, from
        the sample's numeric readings (canonical units, as floats)."""
        smart = self._smart
        if not self._breaker_on:
            return
        for event in monitor_events:
            if event.kind == "loss_of_neutral" and smart.on_loss_of_neutral:
                self._apply(update, *self._m.breaker.trip("neutral", at))
            elif event.kind == "loss_of_neutral_cleared":
                self._apply(
                    update, *self._m.breaker.clear("neutral", at, reconnect=smart.reconnect)
                )
        if smart.enabled:
            self._smart_disconnect(at, numbers, update)
        self.enforce_prepayment(at, update)

    def _smart_disconnect(self, at: datetime, numbers: dict[str, float], update: Update) -> None:
        smart, state = self._smart, self._m.state.breaker
        overrides = self._m.state.limit_overrides
        power_limit = overrides.get("power_w", smart.power_w)
        current_limit = overrides.get("current_a", smart.current_a)
        duration = overrides.get("duration_s", smart.duration_s)

        power = numbers.get(SMART_POWER)
        currents = [c for code in SMART_CURRENTS if (c := numbers.get(code)) is not None]
        if power is None and not currents:
            return
        over = (power_limit is not None and power is not None and power > power_limit) or (
            current_limit is not None and bool(currents) and max(currents) > current_limit
        )
        if over:
            state.under_limit_since = None
            state.over_limit_since = state.over_limit_since or at
            if (at - state.over_limit_since).total_seconds() >= duration:
                self._apply(update, *self._m.breaker.trip("smart", at))
            return
        state.over_limit_since = None
        if "smart" not in state.causes:
            return
        state.under_limit_since = state.under_limit_since or at
        waited = (at - state.under_limit_since).total_seconds()
        if smart.reconnect == "button" or waited >= smart.reconnect_after_s:
            self._apply(update, *self._m.breaker.clear("smart", at, reconnect=smart.reconnect))

    def enforce_prepayment(self, now: datetime, update: Update) -> None:
        if not self._prepaid_on:
            return
        prepaid, state = self._m.prepayment, self._m.state.prepayment
        held = "prepayment" in self._m.state.breaker.causes
        if prepaid.exhausted and not held:
            if prepaid.friendly(now):
                if not state.deferred:
                    state.deferred = True
                    update.events.append(
                        self._m.event(
                            now,
                            "disconnect_deferred",
                            "no credit left; friendly hours keep the power on until they end",
                        )
                    )
                return
            state.deferred = False
            self._apply(update, *self._m.breaker.trip("prepayment", now))
        elif held and not prepaid.exhausted:
            reconnect = self._m.settings.prepayment.reconnect
            self._apply(update, *self._m.breaker.clear("prepayment", now, reconnect=reconnect))

    def result(
        self, now: datetime, update: Update, events: list[Event], actions: list[Action]
    ) -> tuple[Update, dict[str, Any]]:
        self._apply(update, events, actions)
        self.publish(now, update)
        state = self._m.state.breaker
        return update, {
            "state": state.state,
            "causes": list(state.causes),
            "actuator": state.actuator,
        }

    def _apply(self, update: Update, events: list[Event], actions: list[Action]) -> None:
        update.events.extend(events)
        update.actions.extend(actions)

    def publish(self, at: datetime, update: Update) -> None:
        meter, state = self._m, self._m.state
        if self._breaker_on:
            breaker = state.breaker
            meter.put(update, BREAKER_STATE, breaker.state, None, at)
            meter.put(update, BREAKER_ACTUATOR, breaker.actuator, None, at)
        if self._prepaid_on:
            meter.put(update, CREDIT, state.prepayment.balance, self._credit_unit, at)

    def set_limits(self, args: Mapping[str, Any]) -> dict[str, Any]:
        allowed = {"power_w", "current_a", "duration_s"}
        unknown = set(args) - allowed
        if unknown or not args:
            raise CommandError(
                "bad_argument", f"set_limits takes {', '.join(sorted(allowed))}; got {sorted(args)}"
            )
        overrides: dict[str, float] = {}
        for key, raw in args.items():
            if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
                raise CommandError("bad_argument", f"`{key}` must be a positive number")
            overrides[key] = float(raw)
        self._m.state.limit_overrides.update(overrides)
        return dict(self._m.state.limit_overrides)
