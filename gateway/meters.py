"""The meters: one engine each, what outputs may show of them, and their checkpoints.

Live values leave from memory (``published``); the store gets a checkpoint of what changed
every ``checkpoint_interval_s`` (``flush``). Registers only the gateway counts are shown as last
checkpointed, so a power cut can never take a shown one back (README "Durability").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from gateway import obis
from gateway.checkpoint import MeterRow
from gateway.config import Settings
from gateway.engine import AnalysisRow, BillingRecord, MeterEngine, ProfileRow, Register, Update
from gateway.engine.book import (
    ACTIVE_TARIFF,
    BREAKER_ACTUATOR,
    BREAKER_STATE,
    CREDIT,
    HOUR_COUNTER,
    THRESHOLD_COUNT,
)
from gateway.model import Event
from gateway.store import Store

__all__ = ["MeterOutput", "Meters"]

_LOGGER = logging.getLogger(__name__)

# Modules whose meter's registers exist only in the gateway: an S0 input counts pulses, the
# simulator resumes from the registers. Their totals are shown only as checkpointed.
GATEWAY_COUNTING_MODULES = frozenset({"s0", "sim"})
# Registers the engine counts itself on any meter: shown only as checkpointed. (Tariff shares
# are recomputed from the meter's own total after a restart, and a tariff switch checkpoints.)
_COUNTED_BY_ENGINE = frozenset({CREDIT, HOUR_COUNTER, THRESHOLD_COUNT})
# The tariff and the breaker switch rarely and must last: their switches checkpoint at once.
_CHECKPOINT_AT_ONCE = (ACTIVE_TARIFF, BREAKER_STATE, BREAKER_ACTUATOR)


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

    def on_checkpoint(self) -> None:
        """Inside a checkpoint's transaction: anything the output keeps on disk with it."""
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

    def __init__(self, settings: Settings, store: Store, *, clean_start: bool = True) -> None:
        self._store = store
        self.engines: dict[str, MeterEngine] = {}
        self._pending: dict[str, _Pending] = {}
        # Gateway-counted registers as last committed, per meter: what outputs may show of them.
        self._durable: dict[str, dict[str, Register]] = {}
        self._counting: frozenset[str] = frozenset()
        # Meters with registers changed since their last state message.
        self.unpublished: set[str] = set()
        # Gateway-counting meters whose shown totals a committed checkpoint just moved.
        self.recounted: set[str] = set()
        # After a kill -9 or power cut, a meter's own totals may have been shown higher than
        # the checkpoint: they are withheld until the meter's next reading brings them back.
        self._withheld: set[str] = set() if clean_start else {m.id for m in settings.meters}
        self.clean_start = clean_start
        # Each meter's checkpoint as last committed: an unchanged one is not written again.
        self._saved: dict[str, MeterRow] = {}
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
                row = self._store.load_meter(meter.id) or MeterRow()
                registers, state = list(row.registers), row.state
                self._durable[meter.id] = {reg.obis: reg for reg in registers}
                self._saved[meter.id] = row
            self.engines[meter.id] = MeterEngine(
                meter.id, registers, settings=meter, zone=settings.zone, state=state
            )
        self._counting = frozenset(
            meter_id
            for module in settings.modules
            if module.type in GATEWAY_COUNTING_MODULES
            for meter_id in ((module.meter,) if module.meter else ())
        )

    def publishable(self, meter: str) -> bool:
        """False while a meter's own totals are withheld (unclean stop, not heard since)."""
        return meter not in self._withheld

    def heard(self, meter: str) -> None:
        """The meter itself delivered a reading: its own totals are current again."""
        self._withheld.discard(meter)

    def note(self, update: Update) -> list[Event]:
        """Remember what an engine call changed for the next flush; returns its events."""
        # Once per sample: no _Pending made only to be thrown away, no empty lists joined.
        pending = self._pending.get(update.meter)
        if pending is None:
            pending = self._pending[update.meter] = _Pending()
        pending.touched = True
        if update.registers:
            pending.registers.update(update.registers)
            self.unpublished.add(update.meter)
        if update.profile:
            pending.profile += update.profile
        if update.analysis:
            pending.analysis += update.analysis
        if update.billing:
            pending.billing += update.billing
        return update.events

    def tick(self, now: datetime) -> list[Update]:
        """Time-driven engine changes."""
        return [update for engine in self.engines.values() if (update := engine.tick(now))]

    def due_checkpoint(self, update: Update) -> Literal["now", "soon"] | None:
        """When an update must be checkpointed, if not at the next interval: "soon" for a
        debiting stop (billing) or a tariff or breaker switch (tariff shares are not
        recomputable), which every meter crosses at its own next sample, so the gateway gathers
        them into one commit; "now" for a meter's first total only the gateway counts."""
        if update.billing:
            return "soon"
        durable = self._durable.get(update.meter, {})
        registers = update.registers
        if update.meter in self._counting and any(
            code not in durable and _counted_by_gateway(code, True) for code in registers
        ):
            # A total only the gateway counts, never stored yet: shown only once it is, so
            # from the meter's first state message on (once in its life: no commit to spare).
            return "now"
        # A switch, not a first value: the first reading after a start is the interval's job.
        # A loop, not any() over a generator: this runs once per sample.
        for code in _CHECKPOINT_AT_ONCE:
            register = registers.get(code)
            if register is not None:
                stored = durable.get(code)
                if stored is not None and register.value != stored.value:
                    return "soon"
        return None

    def flush(self, outputs: Iterable[MeterOutput]) -> None:
        """The checkpoint: one compact row (registers and engine cursor) for every meter that
        changed, its profile, analysis and billing, all meters in one transaction; profile and
        billing messages are queued inside it."""
        if not self._pending:
            return
        pending: dict[str, _Pending] = {}
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
            # Taken only once the transaction has begun: a BEGIN refused (a read-only or full
            # disk) leaves everything where it was.
            pending, self._pending = self._pending, {}
            # Also when a caller's transaction this one joins fails later, at its COMMIT.
            self._store.after_rollback(keep_for_next_attempt)
            rows: dict[str, MeterRow] = {}
            for meter, work in pending.items():
                engine = self.engines[meter]
                committed[meter] = dict(engine.registers)
                saved = self._saved.get(meter) or MeterRow()
                # Closed intervals ride in the row until the store files them in a batch.
                row = MeterRow(
                    tuple(engine.registers.values()),
                    engine.state_blob(),
                    saved.profile + tuple(work.profile),
                    saved.analysis + tuple(work.analysis),
                )
                if row != saved:
                    rows[meter] = row
                if work.billing:
                    self._store.add_billing(meter, work.billing)
                for output in targets:
                    for profile_row in work.profile:
                        output.on_profile(meter, profile_row)
                    for record in work.billing:
                        output.on_billing(meter, record)
            if rows:
                rows = self._store.save_meters(rows)
            for output in targets:
                output.on_checkpoint()

            def durable() -> None:
                self._durable.update(committed)
                self._saved.update(rows)
                # What only the gateway counts moved on every output: say so at once.
                self.recounted.update(m for m in committed if m in self._counting)

            # Joined to a caller's transaction (a command's), the registers are durable only
            # once that one commits.
            self._store.after_commit(durable)

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
        """Drop profile and analysis rows past their retention, all meters in one transaction
        (a commit each would cost the SD card its fixed few pages once per meter)."""
        removed: dict[str, int] = {}
        with self._store.transaction():
            for meter, engine in self.engines.items():
                settings = engine.settings
                removed[meter] = self._store.prune(
                    meter,
                    profile_before=now - timedelta(days=settings.profile.depth_days),
                    analysis_before=now - timedelta(days=settings.analysis.retention_days),
                )
        for meter, count in removed.items():
            if count:
                _LOGGER.info("meter %s: removed %d rows past retention", meter, count)

    def published(self, meter: str) -> dict[str, Register]:
        """A meter's registers as every output shows them (the durability contract, README).

        Registers the meter keeps itself are shown as the engine has them now: after a power
        cut its next reading brings them back, never lower (the engine's never-backwards guard).
        Registers only the gateway counts (an S0 or simulated meter's totals, credit, the
        hour counter) are shown as last checkpointed, so none is ever shown above what is on
        disk. After an unclean stop a meter's own totals are withheld until it is heard again.

        The one place that decides this: MQTT's ``state``, HTTP, server-sent events and
        ``/metrics`` all read it.
        """
        engine = self.engines.get(meter)
        if engine is None:
            return {}
        durable = self._durable.get(meter, {})
        counting = meter in self._counting
        withheld = meter in self._withheld
        if not counting and not withheld:
            # The usual meter, once per state message: every register as the engine has it
            # (a copy made in C, in the engine's order) but the few the engine counts itself,
            # which show as checkpointed, in place, or not until they are.
            shown = dict(engine.registers)
            for code in _COUNTED_BY_ENGINE:
                if code in shown:
                    if code in durable:
                        shown[code] = durable[code]
                    else:
                        del shown[code]
            return shown
        view: dict[str, Register] = {}
        for code, register in engine.registers.items():
            # _counted_by_gateway, inlined: this runs for every register of every meter at
            # every publish.
            if code in _COUNTED_BY_ENGINE or (counting and obis.is_cumulative(code)):
                if code in durable:
                    view[code] = durable[code]
            elif not (withheld and obis.is_cumulative(code)):
                view[code] = register
        return view

    def live(self, update: Update) -> Update:
        """The part of an update shown at once: no register only the gateway counts."""
        registers = update.registers
        if update.meter in self._counting:
            shown = {
                code: register
                for code, register in registers.items()
                if not _counted_by_gateway(code, True)
            }
        else:
            # Once per sample: a copy made in C less the few engine-counted codes (the hour
            # counter moves with every sample), not a comprehension over every register.
            shown = dict(registers)
            if not _COUNTED_BY_ENGINE.isdisjoint(registers):
                for code in _COUNTED_BY_ENGINE:
                    shown.pop(code, None)
        return Update(update.meter, shown)

    def summary(self, meter: str, codes: Iterable[str]) -> str:
        """A short text of a few registers for logs."""
        registers = self.engines[meter].registers
        parts = [
            f"{code} {registers[code].value} {registers[code].unit or ''}".rstrip()
            for code in codes
            if code in registers
        ]
        return ", ".join(parts) or "no values yet"


def _counted_by_gateway(code: str, counting_meter: bool) -> bool:
    """True for a register only the gateway counts: shown only once it is on disk."""
    return code in _COUNTED_BY_ENGINE or (counting_meter and obis.is_cumulative(code))
