"""The breaker: connected, disconnected, ready for reconnection (after DLMS class 70).

Who may open and close it is configured, not coded: remote commands, the local push button,
smart disconnect (load or loss of neutral) and prepayment. Each opening cause holds the breaker
open until it is cleared; it closes only when none is left, and then either at once or after a
button press, as configured. The breaker acts through an actuator module that must confirm:
an unconfirmed switch is an event and the state says so. It is never a safety function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.engine.settings import BreakerSettings
from gateway.engine.state import CONNECTED, BreakerState
from gateway.errors import CommandError
from gateway.model import Event, Position

__all__ = ["Action", "Breaker"]

DISCONNECTED, READY = "disconnected", "ready_for_reconnection"
LOCAL_CAUSES = ("smart", "neutral", "prepayment")


@dataclass(frozen=True, slots=True)
class Action:
    """Switch the breaker through its actuator module."""

    module: str
    state: Position


class Breaker:
    """Pure state machine; every method returns the events and actions it caused."""

    def __init__(self, meter: str, settings: BreakerSettings, state: BreakerState) -> None:
        self.meter = meter
        self.settings = settings
        self.state = state

    @property
    def closed(self) -> bool:
        """True when power flows (as far as the breaker's state knows)."""
        return self.state.state == CONNECTED

    # operations --------------------------------------------------------------------------------

    def remote(self, operation: str, now: datetime) -> tuple[list[Event], list[Action]]:
        """disconnect, reconnect or arm from MQTT/HTTP; raises CommandError when refused."""
        self._require_enabled()
        settings = self.settings
        if operation == "disconnect":
            if not settings.remote_disconnect:
                raise CommandError("not_allowed", "remote disconnect is not enabled for this meter")
            return self._open("remote", now, DISCONNECTED)
        if operation not in ("reconnect", "arm"):
            raise CommandError("bad_argument", f"unknown breaker operation {operation!r}")
        if settings.remote_reconnect == "never":
            raise CommandError("not_allowed", "remote reconnection is not enabled for this meter")
        others = [cause for cause in self.state.causes if cause != "remote"]
        if others:
            raise CommandError("blocked", f"the breaker is held open by {', '.join(others)}")
        if self.state.state == CONNECTED:
            raise CommandError("no_change", "the breaker is already connected")
        self.state.causes = []
        if operation == "reconnect" and settings.remote_reconnect == "direct":
            return self._close("remote reconnect", now)
        return self._ready("remote arm", now)

    def button(self, now: datetime) -> tuple[list[Event], list[Action]]:
        """The local push button (GPIO input or the web page's button)."""
        self._require_enabled()
        state = self.state
        if state.state == CONNECTED:
            if not self.settings.button_disconnect:
                raise CommandError("not_allowed", "the button may not disconnect this meter")
            return self._open("button", now, READY)
        if state.state == READY:
            if not self.settings.button_reconnect:
                raise CommandError("not_allowed", "the button may not reconnect this meter")
            state.causes = []
            return self._close("button", now)
        raise CommandError(
            "blocked",
            f"disconnected by {', '.join(state.causes) or 'remote'}: it needs a remote reconnect"
            " or the cause cleared first",
        )

    def trip(self, cause: str, now: datetime) -> tuple[list[Event], list[Action]]:
        """A local cause (smart, neutral, prepayment) opens the breaker."""
        if not self.settings.enabled or cause in self.state.causes:
            return [], []
        return self._open(cause, now, DISCONNECTED)

    def clear(
        self, cause: str, now: datetime, *, reconnect: str
    ) -> tuple[list[Event], list[Action]]:
        """A local cause is gone; close now (``auto``) or let the button do it (``button``)."""
        if cause not in self.state.causes:
            return [], []
        self.state.causes.remove(cause)
        if self.state.causes:
            return [
                self._event(
                    now,
                    "breaker_cause_cleared",
                    f"{cause} cleared; still held open by {', '.join(self.state.causes)}",
                )
            ], []
        if reconnect == "auto":
            return self._close(f"{cause} cleared", now)
        return self._ready(f"{cause} cleared", now)

    def feedback(self, position: str, now: datetime) -> list[Event]:
        """The actuator reports where it is ("open"/"closed")."""
        state = self.state
        expected = "closed" if state.state == CONNECTED else "open"
        if position == expected:
            if state.actuator != "confirmed":
                state.actuator, state.target, state.pending_since = "confirmed", None, None
                return [self._event(now, "breaker_confirmed", f"actuator reports {position}")]
            return []
        if state.actuator == "pending":
            return []  # still on its way
        state.actuator = "failed"
        return [
            self._event(
                now,
                "breaker_actuator_mismatch",
                f"the breaker should be {expected} but the actuator reports {position}",
            )
        ]

    def tick(self, now: datetime) -> list[Event]:
        """Time out an unconfirmed switch."""
        state = self.state
        if state.actuator != "pending" or state.pending_since is None:
            return []
        if (now - state.pending_since).total_seconds() < self.settings.confirm_timeout_s:
            return []
        state.actuator = "failed"
        return [
            self._event(
                now,
                "breaker_actuator_failed",
                f"no confirmation of {state.target} within"
                f" {self.settings.confirm_timeout_s:.0f} s; the state may be wrong",
            )
        ]

    # internals ---------------------------------------------------------------------------------

    def _open(self, cause: str, now: datetime, to: str) -> tuple[list[Event], list[Action]]:
        state = self.state
        was_closed = state.state == CONNECTED
        if cause not in state.causes:
            state.causes.append(cause)
        if state.state == DISCONNECTED or (state.state == READY and to == READY):
            return [self._event(now, "breaker_cause_added", f"also held open by {cause}")], []
        state.state = to
        events = [self._event(now, f"breaker_{to}", f"opened by {cause}", cause=cause)]
        return events, self._switch("open", now) if was_closed else []

    def _close(self, cause: str, now: datetime) -> tuple[list[Event], list[Action]]:
        self.state.state = CONNECTED
        return [
            self._event(now, "breaker_connected", f"closed by {cause}", cause=cause)
        ], self._switch("closed", now)

    def _ready(self, cause: str, now: datetime) -> tuple[list[Event], list[Action]]:
        self.state.state = READY
        return [
            self._event(
                now,
                "breaker_ready_for_reconnection",
                f"{cause}: press the button to reconnect",
                cause=cause,
            )
        ], []

    def _switch(self, target: Position, now: datetime) -> list[Action]:
        if self.settings.actuator is None:
            self.state.actuator = "confirmed"  # nothing to drive: the state is the model's own
            return []
        self.state.actuator, self.state.target, self.state.pending_since = "pending", target, now
        return [Action(self.settings.actuator, target)]

    def _require_enabled(self) -> None:
        if not self.settings.enabled:
            raise CommandError(
                "not_allowed", "this meter has no breaker ([meters.breaker] enabled)"
            )

    def _event(self, now: datetime, kind: str, detail: str, **data: object) -> Event:
        return Event(self.meter, now, kind, detail, {"state": self.state.state, **data})
