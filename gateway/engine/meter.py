"""One modelled meter: its registers, fed by Samples, single writer of the meter's state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from gateway import obis
from gateway.model import Event, Sample, Value

__all__ = ["MeterEngine", "Register", "Update"]


@dataclass(frozen=True, slots=True)
class Register:
    """A value the meter holds, with the time the meter measured it."""

    obis: str
    value: Value
    unit: str | None
    at: datetime


@dataclass(slots=True)
class Update:
    """What one call into the engine changed."""

    meter: str
    registers: dict[str, Register] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.registers or self.events)


class MeterEngine:
    """The register set of one meter; lifetime totals never go backwards."""

    def __init__(self, meter_id: str, restored: Iterable[Register] = ()) -> None:
        self.meter_id = meter_id
        self._registers: dict[str, Register] = {reg.obis: reg for reg in restored}

    @property
    def registers(self) -> Mapping[str, Register]:
        """Every register the meter has, by normalized OBIS code."""
        return self._registers

    def ingest(self, sample: Sample) -> Update:
        """Apply one consistent batch of readings."""
        update = Update(self.meter_id)
        for reading in sample.readings:
            code = obis.normalize(reading.obis)
            value, unit = _canonical(code, reading.value, reading.unit)
            previous = self._registers.get(code)
            if previous is not None and obis.is_cumulative(code):
                if _is_decrease(previous.value, value):
                    update.events.append(
                        Event(
                            meter=self.meter_id,
                            at=sample.at,
                            kind="register_decrease",
                            detail=(
                                f"{code} went from {previous.value} to {value} {unit or ''}".strip()
                                + f" (from {sample.source}); kept {previous.value}"
                            ),
                            data={"obis": code, "previous": str(previous.value), "got": str(value)},
                        )
                    )
                    continue
                if previous.value == value:
                    continue
            register = Register(code, value, unit, sample.at)
            self._registers[code] = register
            update.registers[code] = register
        return update


def _canonical(code: str, value: Value, unit: str | None) -> tuple[Value, str | None]:
    """Express a value in the unit the OBIS table gives its quantity (kWh, W, ...)."""
    quantity = obis.describe(code)
    if quantity is None or isinstance(value, str):
        return value, unit
    scale = obis.unit_scale(unit, quantity.unit)
    if scale is None:
        return value, unit
    exact = value if isinstance(value, Decimal) else _decimal(value)
    if exact is None:
        return value, unit
    return (exact.scaleb(scale) if scale else exact), quantity.unit


def _decimal(value: int | float) -> Decimal | None:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _is_decrease(previous: Value, value: Value) -> bool:
    if isinstance(previous, str) or isinstance(value, str):
        return False
    return value < previous
