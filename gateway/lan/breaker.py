"""The breaker and prepayment as the API and the page show them (``http.BreakerResponse``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.contracts import http
from gateway.lan.shapes import event_json
from gateway.model import Event
from gateway.store import Store
from gateway.view import MeterReadout

__all__ = ["HISTORY_KINDS", "SAFETY_NOTE", "breaker_json"]

SAFETY_NOTE = (
    "The breaker is never a safety function: it switches the supply on a software decision and"
    " does not isolate the installation. Use the main switch before any work on the wiring."
)
# What changed the breaker or the credit, for the history beside the state.
HISTORY_KINDS = (
    "breaker_disconnected",
    "breaker_connected",
    "breaker_ready_for_reconnection",
    "breaker_actuator_failed",
    "breaker_actuator_mismatch",
    "button_refused",
    "top_up",
    "credit_low",
    "emergency_credit",
    "credit_exhausted",
    "disconnect_deferred",
)
HISTORY_DAYS = 400
HISTORY_MAX = 50
_PAGE = 1000


def breaker_json(engine: MeterReadout, store: Store, now: datetime) -> http.BreakerResponse:
    """State, causes, actuator confirmation, control modes, credit and recent history."""
    settings = engine.settings
    breaker, state = settings.breaker, engine.state.breaker
    smart = breaker.smart_disconnect
    overrides = engine.state.limit_overrides
    prepayment, credit = settings.prepayment, engine.state.prepayment
    return http.BreakerResponse(
        meter=engine.meter_id,
        safety=SAFETY_NOTE,
        enabled=breaker.enabled,
        state=state.state,
        causes=list(state.causes),
        actuator=http.BreakerActuator(
            module=breaker.actuator,
            confirmation=state.actuator,
            target=state.target,
            pending_since=state.pending_since,
            confirm_timeout_s=breaker.confirm_timeout_s,
        ),
        control=http.BreakerControl(
            remote_disconnect=breaker.remote_disconnect,
            remote_reconnect=breaker.remote_reconnect,
            button_disconnect=breaker.button_disconnect,
            button_reconnect=breaker.button_reconnect,
        ),
        smart_disconnect=http.SmartDisconnectStatus(
            enabled=smart.enabled,
            power_w=overrides.get("power_w", smart.power_w),
            current_a=overrides.get("current_a", smart.current_a),
            duration_s=overrides.get("duration_s", smart.duration_s),
            on_loss_of_neutral=smart.on_loss_of_neutral,
            reconnect=smart.reconnect,
        ),
        prepayment=http.PrepaymentStatus(
            enabled=prepayment.enabled,
            unit=prepayment.unit,
            credit=str(credit.balance),
            exhausted=credit.exhausted,
            emergency_in_use=credit.emergency_in_use,
            deferred=credit.deferred,
            friendly_now=prepayment.enabled and engine.prepayment.friendly(now),
            last_sequence=credit.last_sequence,
            warning_levels=list(prepayment.warning_levels),
            reconnect=prepayment.reconnect,
        ),
        history=_history(engine.meter_id, store, now),
    )


def _history(meter: str, store: Store, now: datetime) -> list[http.EventEntry]:
    since = now - timedelta(days=HISTORY_DAYS)
    found: list[tuple[int, Event]] = []
    for kind in HISTORY_KINDS:
        newest: list[tuple[int, Event]] = []
        after_id = 0
        while True:  # the log pages oldest first; keep the newest of each kind
            page = store.events(meter, kind=kind, since=since, limit=_PAGE, after_id=after_id)
            newest = (newest + page)[-HISTORY_MAX:]
            if len(page) < _PAGE:
                break
            after_id = page[-1][0]
        found += newest
    found.sort(key=lambda entry: entry[0], reverse=True)
    return [event_json(event_id, event) for event_id, event in found[:HISTORY_MAX]]
