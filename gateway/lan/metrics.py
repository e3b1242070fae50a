"""``/metrics``: meter registers and the gateway's own health in the Prometheus text format.

Written by hand (format 0.0.4): the daemon needs no client library to expose a few gauges, and
every value comes from state the gateway already holds, read at scrape time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from gateway import __version__, obis
from gateway.model import utc_now

if TYPE_CHECKING:
    from gateway.view import GatewayView

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PREFIX = "meter_gateway"


class _Family:
    """One metric family: HELP, TYPE and its samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = f"{_PREFIX}_{name}"
        self.kind = kind
        self.help = help_text
        self.samples: list[tuple[dict[str, str], float]] = []

    def add(self, value: float, **labels: str) -> None:
        """One sample with its labels."""
        self.samples.append((labels, value))

    def lines(self) -> Iterable[str]:
        """The family in exposition format (counters get their ``_total`` suffix)."""
        if not self.samples:
            return
        name = f"{self.name}_total" if self.kind == "counter" else self.name
        yield f"# HELP {name} {_escape_help(self.help)}"
        yield f"# TYPE {name} {self.kind}"
        for labels, value in self.samples:
            label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            braces = f"{{{label_text}}}" if label_text else ""
            yield f"{name}{braces} {_number(value)}"


def render(gateway: GatewayView, *, loop_lag_s: float, sse_clients: int) -> str:
    """The whole scrape."""
    now = utc_now()
    info = _Family("info", "gauge", "Gateway identity; the value is always 1.")
    info.add(1, version=__version__, name=gateway.settings.gateway.name)
    uptime = _Family("uptime_seconds", "gauge", "Seconds since the gateway started.")
    uptime.add((now - gateway.started_at).total_seconds())
    lag = _Family("loop_lag_seconds", "gauge", "How late the event loop woke for a 1 s timer.")
    lag.add(loop_lag_s)
    clients = _Family("live_clients", "gauge", "Open server-sent event streams.")
    clients.add(sse_clients)
    store = _Family(
        "store_writable", "gauge", "1 while the store takes writes; 0 while it cannot (full, gone)."
    )
    store.add(0 if gateway.store_problem else 1)
    clock = _Family(
        "clock_believed", "gauge", "1 once the system clock is believable; 0 while records wait."
    )
    clock.add(1 if gateway.clock_trusted else 0)
    families = [info, uptime, lag, clients, store, clock, *_meter_families(gateway, now)]
    families += _module_families(gateway, now)
    families += _output_families(gateway)
    return "\n".join(line for family in families for line in family.lines()) + "\n"


def _meter_families(gateway: GatewayView, now: datetime) -> list[_Family]:
    value = _Family(
        "register_value",
        "gauge",
        "A meter register in its unit (kWh, W, V, ...), labelled with its OBIS code.",
    )
    age = _Family("register_age_seconds", "gauge", "Seconds since the meter measured the register.")
    for meter_id in sorted(gateway.engines):
        for code, register in sorted(gateway.published(meter_id).items()):
            number = _float(register.value)
            if number is None:
                continue
            quantity = obis.describe(code)
            value.add(
                number,
                meter=meter_id,
                obis=code,
                name=quantity.name if quantity else "",
                unit=register.unit or "",
            )
            age.add(max((now - register.at).total_seconds(), 0.0), meter=meter_id, obis=code)
    return [value, age]


def _module_families(gateway: GatewayView, now: datetime) -> list[_Family]:
    frames = _Family("module_frames", "counter", "Frames a module received, by result.")
    restarts = _Family("module_restarts", "counter", "Times the supervisor restarted a module.")
    up = _Family("module_up", "gauge", "1 while the module runs and its device communicates.")
    state = _Family("module_state", "gauge", "The module's supervisor state (1 for the current).")
    silence = _Family(
        "module_last_frame_age_seconds", "gauge", "Seconds since the module's last good frame."
    )
    heard = _Family(
        "receiver_telegrams",
        "counter",
        "Copies of a meter's telegrams a receiver delivered (coverage, where copies are merged).",
    )
    rssi = _Family("receiver_best_rssi_dbm", "gauge", "The best RSSI a receiver heard a meter at.")
    for name, health in sorted(gateway.health.items()):
        for meter, receivers in sorted(health.coverage.items()):
            for receiver, seen in sorted(receivers.items()):
                heard.add(seen.telegrams, module=name, meter=meter, receiver=receiver)
                if seen.best_rssi_dbm is not None:
                    rssi.add(seen.best_rssi_dbm, module=name, meter=meter, receiver=receiver)
        frames.add(health.frames_ok, module=name, type=health.type, result="ok")
        frames.add(health.frames_failed, module=name, type=health.type, result="failed")
        restarts.add(health.restarts, module=name, type=health.type)
        up.add(
            int(health.state == "running" and health.communicating), module=name, type=health.type
        )
        for candidate in ("starting", "running", "backoff", "stopped"):
            state.add(int(health.state == candidate), module=name, state=candidate)
        if health.last_frame_at is not None:
            silence.add((now - health.last_frame_at).total_seconds(), module=name)
    return [frames, restarts, up, state, silence, heard, rssi]


def _output_families(gateway: GatewayView) -> list[_Family]:
    """Outbox depth and connection state from each output's ``status()``."""
    connected = _Family("output_connected", "gauge", "1 while an output holds its connection.")
    depth = _Family("outbox_depth", "gauge", "Messages waiting in an output's persistent outbox.")
    size = _Family("outbox_bytes", "gauge", "Bytes waiting in an output's persistent outbox.")
    dropped = _Family("outbox_dropped", "counter", "Messages an output's full outbox dropped.")
    for output in gateway.outputs:
        status = output.status()
        for family, value in (
            (connected, status.connected),
            (depth, status.outbox_depth),
            (size, status.outbox_bytes),
            (dropped, status.outbox_dropped),
        ):
            number = _float(value)
            if number is not None:
                family.add(number, output=output.name)
    return [connected, depth, size, dropped]


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
