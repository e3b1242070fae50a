"""The meters: one engine each, and the bounded-rate write-back of their state to the store."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from gateway import obis
from gateway.config import Settings
from gateway.engine import AnalysisRow, BillingRecord, MeterEngine, ProfileRow, Register, Update
from gateway.model import Event
from gateway.store import Store

__all__ = ["MeterOutput", "Meters"]

_LOGGER = logging.getLogger(__name__)


class MeterOutput(Protocol):
    """What the meters hand to outputs at a flush, inside the committing transaction."""

    def on_state(self, meter: str, registers: Mapping[str, Register]) -> None:
        """A meter's registers, inside the store transaction that makes them durable."""
        ...

    def on_profile(self, meter: str, row: ProfileRow) -> None:
        """A closed load-profile interval, inside the transaction that stores it."""
        ...

    def on_billing(self, meter: str, record: BillingRecord) -> None:
        """A debiting-stop snapshot, inside the transaction that stores it."""
        ...


@dataclass(slots=True)
class _Pending:
    registers: dict[str, Register] = field(default_factory=dict)
    profile: list[ProfileRow] = field(default_factory=list)
    analysis: list[AnalysisRow] = field(default_factory=list)
    billing: list[BillingRecord] = field(default_factory=list)
    touched: bool = False


class Meters:
    """Engines by meter id; collects what changed and commits it in one transaction."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._store = store
        self.engines: dict[str, MeterEngine] = {}
        self._pending: dict[str, _Pending] = {}
        # Lifetime totals as last committed, per meter: what every output may show of them.
        self._durable: dict[str, dict[str, Register]] = {}
        self.sync(settings)

    def sync(self, settings: Settings) -> None:
        """Create engines for new meters; rebuild those whose settings changed, keeping state."""
        for meter in settings.meters:
            engine = self.engines.get(meter.id)
            if engine is not None and engine.settings == meter and engine.zone == settings.zone:
                continue
            state: bytes | None
            if engine is not None:
                registers, state = list(engine.registers.values()), engine.state_blob()
            else:
                registers = self._store.load_registers(meter.id)
                state = self._store.load_engine_state(meter.id)
                self._durable[meter.id] = _totals(registers)
            self.engines[meter.id] = MeterEngine(
                meter.id, registers, settings=meter, zone=settings.zone, state=state
            )

    def note(self, update: Update) -> list[Event]:
        """Remember what an engine call changed for the next flush; returns its events."""
        pending = self._pending.setdefault(update.meter, _Pending())
        pending.touched = True
        pending.registers.update(update.registers)
        pending.profile += update.profile
        pending.analysis += update.analysis
        pending.billing += update.billing
        return update.events

    def tick(self, now: datetime) -> list[Update]:
        """Time-driven engine changes."""
        return [update for engine in self.engines.values() if (update := engine.tick(now))]

    def flush(self, outputs: Iterable[MeterOutput]) -> None:
        """Commit registers, engine cursors, profiles, analysis and billing in one transaction;
        outputs queue their messages inside it, so what is published is exactly what is stored."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        targets = list(outputs)
        committed: dict[str, dict[str, Register]] = {}

        def keep_for_next_attempt() -> None:
            # A full disk must not lose readings: everything waits for the next flush.
            for meter, work in pending.items():
                newer = self._pending.get(meter)
                if newer is not None:
                    work.registers.update(newer.registers)
                    work.profile += newer.profile
                    work.analysis += newer.analysis
                    work.billing += newer.billing
                self._pending[meter] = work

        with self._store.transaction():
            # Also when a caller's transaction this one joins fails later, at its COMMIT.
            self._store.after_rollback(keep_for_next_attempt)
            for meter, work in pending.items():
                engine = self.engines[meter]
                committed[meter] = _totals(engine.registers.values())
                self._store.save_registers(meter, work.registers.values())
                self._store.save_engine_state(meter, engine.state_blob())
                self._store.add_profile(meter, work.profile)
                self._store.add_analysis(meter, work.analysis)
                self._store.add_billing(meter, work.billing)
                for output in targets:
                    if work.registers:
                        output.on_state(meter, engine.registers)
                    for row in work.profile:
                        output.on_profile(meter, row)
                    for record in work.billing:
                        output.on_billing(meter, record)
            # Joined to a caller's transaction (a command's), the totals are durable only once
            # that one commits.
            self._store.after_commit(lambda: self._durable.update(committed))

    def checkpoint(self, meter: str) -> tuple[list[Register], bytes]:
        """What ``restore`` needs to put a meter's engine back as it is now."""
        engine = self.engines[meter]
        return list(engine.registers.values()), engine.state_blob()

    def restore(self, meter: str, saved: tuple[list[Register], bytes], undone: Update) -> None:
        """Put a meter's engine back to a checkpoint and forget what ``undone`` queued for the
        next flush: a command whose write failed leaves no trace, and its retry is no replay."""
        registers, state = saved
        old = self.engines[meter]
        self.engines[meter] = MeterEngine(
            meter, registers, settings=old.settings, zone=old.zone, state=state
        )
        pending = self._pending.get(meter)
        if pending is None:
            return
        before = {register.obis: register for register in registers}
        for code in undone.registers:
            if code in before:
                pending.registers[code] = before[code]
            else:
                pending.registers.pop(code, None)
        pending.profile = [r for r in pending.profile if not any(r is u for u in undone.profile)]
        pending.analysis = [r for r in pending.analysis if not any(r is u for u in undone.analysis)]
        pending.billing = [r for r in pending.billing if not any(r is u for u in undone.billing)]

    def prune(self, now: datetime) -> None:
        """Drop profile and analysis rows past their retention."""
        for meter, engine in self.engines.items():
            settings = engine.settings
            removed = self._store.prune(
                meter,
                profile_before=now - timedelta(days=settings.profile.depth_days),
                analysis_before=now - timedelta(days=settings.analysis.retention_days),
            )
            if removed:
                _LOGGER.info("meter %s: removed %d rows past retention", meter, removed)

    def published(self, meter: str) -> dict[str, Register]:
        """A meter's registers as every output shows them: lifetime totals as last committed
        (what MQTT's ``state`` carries, so a kill -9 can never take a shown total back),
        instantaneous values as the engine has them now.

        The one place that decides which totals are shown: HTTP, server-sent events and
        ``/metrics`` read this, MQTT gets the same registers inside the committing transaction.
        """
        engine = self.engines.get(meter)
        if engine is None:
            return {}
        view = {code: reg for code, reg in engine.registers.items() if _shown_live(code)}
        view.update(self._durable.get(meter, {}))
        return view

    def live(self, update: Update) -> Update:
        """The part of an update that may be shown before it is durable: no lifetime totals."""
        return Update(
            update.meter,
            {code: register for code, register in update.registers.items() if _shown_live(code)},
        )

    def summary(self, meter: str, codes: Iterable[str]) -> str:
        """A short text of a few registers for logs."""
        registers = self.engines[meter].registers
        parts = [
            f"{code} {registers[code].value} {registers[code].unit or ''}".rstrip()
            for code in codes
            if code in registers
        ]
        return ", ".join(parts) or "no values yet"


def _shown_live(code: str) -> bool:
    """Instantaneous values may be shown before they are durable; lifetime totals may not."""
    return not obis.is_cumulative(code)


def _totals(registers: Iterable[Register]) -> dict[str, Register]:
    return {reg.obis: reg for reg in registers if not _shown_live(reg.obis)}
