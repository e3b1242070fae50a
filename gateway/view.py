"""What outputs may read and ask of the running gateway: typed, read-only, never the Gateway.

The supervisor (``gateway/app.py``) hands itself to every output (the MQTT bridge, the LAN
server, the compatibility stand-ins) typed as ``GatewayView``: the outputs read the meters, their
state, logs and health through it and ask for commands through it, and mypy refuses anything
else (feeding samples, persisting, stopping). They never import ``gateway.app``, so the
supervisor can be given its outputs instead of importing them, and the import graph has no
circle. Each property is read when it is used: a reload (SIGHUP) that replaces the settings or
the meters shows at the next read.

``MeterView`` is the smaller view of one meter that an output speaking someone else's protocol
(HomeWizard, Shelly) needs: present values with units and times, nothing more. The values are
what every other output shows: lifetime totals as last committed to the store, instantaneous
values as last measured.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from gateway import obis
from gateway.adapter import ModuleHealth
from gateway.config import Settings
from gateway.contracts.http import OutputStatus
from gateway.engine import BillingRecord, ProfileRow, Register, Update
from gateway.engine.commands import CommandSpec
from gateway.engine.display import Display
from gateway.engine.settings import EngineSettings
from gateway.engine.state import EngineState
from gateway.model import Command, Event, RawFrame
from gateway.store import Store

__all__ = [
    "CommandHandler",
    "FriendlyHours",
    "GatewayView",
    "MeterReadout",
    "MeterValue",
    "MeterView",
    "Output",
    "meter_view",
]

CommandHandler = Callable[[Command], Awaitable[Mapping[str, Any]]]


class Output(Protocol):
    """A consumer of meter data (MQTT bridge, HTTP server, compatibility stand-ins)."""

    name: str

    async def run(self) -> None:
        """Serve until cancelled."""
        ...

    def on_state(self, meter: str, registers: Mapping[str, Register]) -> None:
        """A meter's registers as ``Meters.published`` shows them, from memory, at most once
        per publish interval."""
        ...

    def on_profile(self, meter: str, row: ProfileRow) -> None:
        """A closed load-profile interval, inside the transaction that stores it."""
        ...

    def on_billing(self, meter: str, record: BillingRecord) -> None:
        """A debiting-stop snapshot, inside the transaction that stores it."""
        ...

    def on_live(self, update: Update) -> None:
        """What a sample changed, at once (never a register only the gateway counts)."""
        ...

    def on_checkpoint(self) -> None:
        """Inside a checkpoint's transaction: anything the output keeps on disk with it."""
        ...

    def on_event(self, event_id: int, event: Event) -> None:
        """An event, already in the non-volatile log."""
        ...

    def on_raw(self, frame: RawFrame) -> None:
        """A raw frame from a module (with its receive time and signal strength)."""
        ...

    def status(self) -> OutputStatus:
        """The output's own state for /api/v1/health and /metrics (``connected`` and, where it
        has one, the outbox's depth, bytes and drops)."""
        ...


class FriendlyHours(Protocol):
    """When a prepayment meter may not disconnect (nights, weekends, holidays)."""

    def friendly(self, now: datetime) -> bool:
        """True inside friendly hours."""
        ...


class MeterReadout(Protocol):
    """The parts of a meter engine an output reads (``MeterEngine`` has them); an output never
    ingests, ticks or commands through it: commands go through ``GatewayView.execute``."""

    @property
    def meter_id(self) -> str: ...

    @property
    def settings(self) -> EngineSettings: ...

    @property
    def state(self) -> EngineState: ...

    @property
    def display(self) -> Display: ...

    @property
    def prepayment(self) -> FriendlyHours: ...

    def display_state(self, now: datetime, *, powered: bool = True) -> dict[str, Any]:
        """What the modelled LCD shows now."""
        ...

    def active_tariff(self, at: datetime) -> int:
        """The tariff in force at an instant."""
        ...


class GatewayView(Protocol):
    """The running gateway as an output sees it: read-only properties and a few asks.

    Reads: the ``settings`` in force (a reload replaces them), ``engines`` by meter id, a
    meter's ``registers`` as its engine has them and as every output shows them (``published``:
    the durability contract), module ``health``, the ``outputs`` (for health and metrics),
    whether the store can be written (``store_problem``) and the clock is believed, and the
    ``commands`` that can be executed now. Logs: ``store.snapshot()`` opens a consistent
    view for one long read (profile, analysis, billing, events) and ``store.events``
    pages the event log; the store is also where an output keeps its own rows (the MQTT outbox,
    sequence numbers).
    Asks: ``execute`` a command (CommandError says why not); ``add_command`` routes a command
    the output serves itself (the bridge's ``resend_discovery``).
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def clean_start(self) -> bool:
        """True when the last run stopped in order (no kill -9 or power cut since)."""
        ...

    @property
    def engines(self) -> Mapping[str, MeterReadout]: ...

    @property
    def health(self) -> Mapping[str, ModuleHealth]: ...

    @property
    def outputs(self) -> Sequence[Output]: ...

    @property
    def store(self) -> Store: ...

    @property
    def store_problem(self) -> str | None:
        """Why the store cannot be written now, or None."""
        ...

    @property
    def clock_trusted(self) -> bool:
        """True once the system clock is believable (records are stamped with it)."""
        ...

    @property
    def commands(self) -> tuple[str, ...]:
        """Names of the commands that can be executed now."""
        ...

    def command_spec(self, name: str) -> CommandSpec | None:
        """The command table's row for ``name`` (who may send it, its arguments), if any."""
        ...

    def registers(self, meter: str) -> Mapping[str, Register]:
        """A meter's registers as its engine has them now."""
        ...

    def published(self, meter: str) -> Mapping[str, Register]:
        """A meter's registers as every output shows them (``Meters.published``)."""
        ...

    async def execute(self, command: Command) -> Mapping[str, Any]:
        """Carry out a command or raise CommandError saying why not."""
        ...

    def add_command(self, name: str, handler: CommandHandler) -> Callable[[], None]:
        """Route commands called ``name`` to ``handler``; returns the undo callable."""
        ...


def meter_view(gateway: GatewayView, meter_id: str) -> MeterView:
    """The read-only view of one meter that compatibility outputs get instead of the engine."""
    config = gateway.settings.meter(meter_id)

    def readings() -> dict[str, MeterValue]:
        return {
            code: MeterValue(
                float(reg.value) if isinstance(reg.value, Decimal) else reg.value, reg.unit, reg.at
            )
            for code, reg in gateway.published(meter_id).items()
        }

    return MeterView(meter_id, config.name or meter_id, readings)


@dataclass(frozen=True, slots=True)
class MeterValue:
    """One register as shown: value, unit (None for pure numbers) and when it was measured."""

    value: float | int | str
    unit: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class MeterView:
    """One meter, read-only.

    ``readings`` returns the registers by OBIS code (``"1-0:1.7.0"``) each time it is called,
    so a caller always sees the latest values without holding on to the engine.
    """

    id: str
    name: str
    readings: Callable[[], Mapping[str, MeterValue]]

    def number(self, code: str, unit: str | None) -> float | None:
        """A register's value in ``unit`` (kWh, W, V, A ...), or None when the meter does not
        have it, it is not a number, or its unit cannot be turned into ``unit``."""
        reading = self.readings().get(code)
        if reading is None or isinstance(reading.value, str):
            return None
        scale = obis.unit_scale(reading.unit, unit)
        if scale is None:
            return None
        return float(reading.value) * 10.0**scale

    def text(self, code: str) -> str | None:
        """A register's value as text (serial numbers), or None when absent."""
        reading = self.readings().get(code)
        return None if reading is None else str(reading.value)

    def snapshot(self) -> MeterView:
        """This meter with its values as they are now, fixed: one reply built from it shows
        one moment (a total and its phases agree), and reads the registers only once."""
        values = dict(self.readings())
        return MeterView(self.id, self.name, lambda: values)

    def latest(self) -> datetime | None:
        """When the newest of the meter's values was measured; None before the first one."""
        readings = self.readings()
        return max((r.at for r in readings.values()), default=None)
