"""The supervisor: one root TaskGroup for the modules (``gateway/supervision.py`` keeps their
tasks and backoff), the outputs it is handed and the housekeeping loops; reload, orderly
shutdown.

It is also the hub between modules and the rest: samples go to the meter's engine and its state
to the outputs straight from memory (``Meters.published`` decides what may be shown), events to
the store and then the outputs, registers and engine state to the store as checkpoints every
``checkpoint_interval_s`` and at every debiting stop, tariff or breaker switch, reload and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway import config as config_module
from gateway.adapter import ModuleHealth
from gateway.config import Settings
from gateway.engine import MeterEngine, Register, Update
from gateway.engine.commands import COMMANDS, CommandSpec, parse_args, sender_of
from gateway.errors import (
    CommandError,
    ConfigError,
    GatewayError,
    StoreError,
)
from gateway.meters import Meters
from gateway.model import Command, Event, RawFrame, Sample, utc_now
from gateway.outputs import default_outputs
from gateway.run_notes import (
    CLOCK_SAVE_EVERY_S,
    mark_running,
    mark_stopped,
    save_wall_clock,
    saved_wall_clock,
)
from gateway.store import Store
from gateway.store_health import StoreHealth, describe_store_error
from gateway.supervision import ModuleSupervisor
from gateway.systemd import Notifier
from gateway.timekeeping import ClockGuard
from gateway.view import CommandHandler, GatewayView, Output

__all__ = ["Gateway", "OutputFactory", "PruneSchedule"]

_LOGGER = logging.getLogger(__name__)

# The store is opened before anything else; this is its file name under data_dir.
STORE_FILE = "gateway.db"
# A loop that wakes this late is wedged: stop pinging the systemd watchdog.
MAX_LOOP_LAG_S = 2.0
# A newcomer sees values moving at once; a long-running service logs a heartbeat, not a stream.
SUMMARY_WARMUP_S = 30.0
# Logs wear SD cards too: past the warm-up, one line an hour covers every meter.
SUMMARY_EVERY_S = 3600.0
SUMMARY_METERS_MAX = 10
_SUMMARY_CODES = ("1-0:1.8.0", "1-0:2.8.0", "1-0:1.7.0", "1-0:2.7.0")
# Debiting stops of a silent meter and display time-outs need a clock even without samples.
TICK_S = 1.0
# A checkpoint that must not wait for the interval (a tariff switch, a debiting stop, a breaker
# switch) waits this long for the other meters' of the same instant: each meter crosses it at its
# own next sample, 1 Hz meters within a second of each other, and every commit costs the SD card
# the same few pages however little it holds, so ten meters' tariff switch is one commit instead
# of ten. It is also how late such a switch can reach the disk (README "Durability").
GATHER_AT_ONCE_S = 1.0
# Retention is in days, so a few prunes a day keep the tables within a few hours of their bound.
PRUNE_EVERY_S = 6 * 3600.0
# While the store cannot be written (disk full, read-only, deleted directory) events wait in
# memory, in order, up to this many; the oldest give way beyond it (counted and logged).
UNSAVED_EVENTS_MAX = 10_000
# A meter sampling at about the publish interval jitters around it: a sample this close to the
# interval after the last state message goes out at once instead of waiting a whole interval.
PUBLISH_SLACK = 0.8
# Held-back state messages (a meter sampling faster than the interval) are looked at this often,
# as a share of the publish interval.
PUBLISH_CHECKS_PER_INTERVAL = 4


class PruneSchedule:
    """When to drop rows past retention: at the first tick after start (the gateway may have been
    down while rows expired), then every ``PRUNE_EVERY_S``.

    Driven by a monotonic clock whose zero means nothing (it counts from the host's boot), so
    only differences between its readings are used.
    """

    def __init__(self, every_s: float = PRUNE_EVERY_S) -> None:
        self.every_s = every_s
        self._next: float | None = None

    def due(self, monotonic_now: float) -> bool:
        """True (and the next one scheduled) when a prune should run now."""
        if self._next is not None and monotonic_now < self._next:
            return False
        self._next = monotonic_now + self.every_s
        return True


# Builds the outputs on the view they read (the Gateway, typed as GatewayView): the registry's
# by default (what `meter-gateway run` serves), a test's own, or none.
OutputFactory = Callable[[GatewayView], Sequence[Output]]


class Gateway:
    """The running daemon's state: config, store, engines, modules, outputs."""

    def __init__(  # noqa: PLR0913 - keyword-only options
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
        outputs: OutputFactory | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: ClockGuard | None = None,
    ) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.store = Store(settings.data_path / STORE_FILE)
        self.clock = clock or ClockGuard(saved_wall_clock(self.store))
        self.clock.check()  # READY's status line already says whether the clock is believed
        self.samples_held = 0  # dropped while the clock was not believable
        self._clock_saved = float("-inf")
        self._clock_save_due = False
        self._clock_said = False  # "waiting for the clock" was logged
        self.meters = Meters(settings, self.store, clean_start=mark_running(self.store))
        self._last_publish: dict[str, float] = {}
        self.modules = ModuleSupervisor(self)
        self.outputs: list[Output] = []
        self.started_at = utc_now()
        self._output_factory = outputs or default_outputs
        self._group: asyncio.TaskGroup | None = None
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._checkpoint_due = asyncio.Event()  # see GATHER_AT_ONCE_S
        self._kept_states: dict[tuple[str, str], bytes] = {}  # (module, key): for the checkpoint
        self._unknown_said: set[tuple[str, str]] = set()  # (module, meter) refused and logged
        self._store_health = StoreHealth(self.store.path, monotonic)
        self._unsaved_events: deque[Event] = deque()
        self._events_given_up = 0
        self._command_handlers: dict[str, CommandHandler] = {}
        self._last_summary: dict[str, float] = {}
        self._warmed_up = False  # past SUMMARY_WARMUP_S: one summary line an hour
        for name in MeterEngine.COMMANDS:
            self.add_command(name, self._engine_command)

    @property
    def engines(self) -> Mapping[str, MeterEngine]:
        """The meter engines by meter id."""
        return self.meters.engines

    @property
    def health(self) -> Mapping[str, ModuleHealth]:
        """What the supervisor knows about each module, by name."""
        return self.modules.health

    @property
    def store_problem(self) -> str | None:
        """Why the store cannot be written now, or None."""
        return self._store_health.problem

    @property
    def clean_start(self) -> bool:
        """True when the last run stopped in order (no kill -9 or power cut since)."""
        return self.meters.clean_start

    @property
    def clock_trusted(self) -> bool:
        """True once the system clock is believable."""
        return self.clock.trusted

    # the hub seen by modules -------------------------------------------------------------------

    def submit(self, module: str, sample: Sample) -> None:
        """Feed a sample to its meter's engine; unknown meters are refused loudly once."""
        engine = self.engines.get(sample.meter)
        if engine is None:
            if (module, sample.meter) not in self._unknown_said:  # logs wear the SD card too
                self._unknown_said.add((module, sample.meter))
                _LOGGER.warning(
                    "module %s sent a sample for unknown meter %r", module, sample.meter
                )
            return
        if not self.clock.check():
            # Profile intervals, billing and events would carry a time from before the sync.
            self.samples_held += 1
            return
        update = engine.ingest(sample)
        self.meters.heard(sample.meter)
        self._apply(update)

    def report(self, event: Event) -> None:
        """Persist an event (see ``report_all``)."""
        self.report_all((event,))

    def report_all(self, events: Iterable[Event]) -> None:
        """Persist events that happened together (one engine update's) in one transaction;
        outputs queue them in it, so none is lost. Every commit costs the SD card the same few
        pages however small (gateway/store.py): a credit running out is four events at once,
        and ten meters' are forty. While the store cannot be written the events wait in
        memory, in order, for the next flush."""
        waiting = bool(self._unsaved_events)
        for event in events:
            _LOGGER.info("event %s on %s: %s", event.kind, event.meter, event.detail)
            if not self.clock.check():
                _LOGGER.info("event above not stored: %s", self.clock.why_not)
                continue
            if len(self._unsaved_events) >= UNSAVED_EVENTS_MAX:
                self._unsaved_events.popleft()
                self._events_given_up += 1
            self._unsaved_events.append(event)
        if self._unsaved_events and not waiting:
            try:
                self._write_unsaved_events()
            except (sqlite3.Error, OSError, StoreError) as err:
                self._store_failed(err)

    def _write_unsaved_events(self) -> None:
        """Write waiting events (oldest first) with their outputs, in one transaction."""
        if not self._unsaved_events:
            return
        batch = list(self._unsaved_events)
        with self.store.transaction():
            ids = self.store.add_events(batch)
            for event_id, event in zip(ids, batch, strict=True):
                for output in self.outputs:
                    output.on_event(event_id, event)
        for _ in batch:
            self._unsaved_events.popleft()

    def registers(self, meter: str) -> Mapping[str, Register]:
        """A meter's current registers."""
        engine = self.engines.get(meter)
        return engine.registers if engine else {}

    def published(self, meter: str) -> Mapping[str, Register]:
        """A meter's registers as every output shows them (``Meters.published``)."""
        return self.meters.published(meter)

    def load_state(self, module: str, key: str) -> bytes | None:
        """A module's persisted blob (one kept for the next checkpoint is already it)."""
        kept = self._kept_states.get((module, key))
        return kept if kept is not None else self.store.get_state(module, key)

    def save_state(self, module: str, key: str, value: bytes) -> None:
        """Persist a module's blob."""
        self.store.put_state(module, key, value)

    def keep_state(self, module: str, key: str, value: bytes) -> None:
        """Persist a module's blob with the next checkpoint, in its commit: a value that changes
        all the time (a pulse count) costs the SD card no commit of its own."""
        self._kept_states[(module, key)] = value

    def _write_kept_states(self) -> None:
        """Inside the checkpoint's transaction: the modules' kept blobs, newest only."""
        kept, self._kept_states = self._kept_states, {}
        if not kept:
            return

        def keep_for_next_attempt() -> None:
            self._kept_states = kept | self._kept_states  # a value kept meanwhile is newer

        self.store.after_rollback(keep_for_next_attempt)
        for (module, key), value in kept.items():
            self.store.put_state(module, key, value)

    def publish_raw(self, frame: RawFrame) -> None:
        """Hand a raw frame to outputs that want it."""
        for output in self.outputs:
            output.on_raw(frame)

    def add_command(self, name: str, handler: CommandHandler) -> Callable[[], None]:
        """Route commands called ``name`` to ``handler``; returns the undo callable."""
        if name in self._command_handlers:
            raise ValueError(f"command {name!r} already has a handler")
        self._command_handlers[name] = handler
        return lambda: self._command_handlers.pop(name, None) and None

    async def execute(self, command: Command) -> Mapping[str, Any]:
        """Carry out a command or raise CommandError saying why not; nothing changes then."""
        if command.meter not in self.engines and command.meter != self.settings.gateway.name:
            raise CommandError("unknown_meter", f"no meter {command.meter!r}")
        spec = self.command_spec(command.name)
        if spec is not None:
            # The table decides who may send it and what its arguments are, for every channel.
            sender = sender_of(command.source)
            if sender not in spec.senders:
                raise CommandError(
                    "not_permitted",
                    f"{command.name} cannot be sent by {sender}"
                    f" (only {', '.join(sorted(spec.senders))})",
                )
            parse_args(spec, command.args)  # refused here, naming the field, before anything runs
        handler = self._command_handlers.get(command.name)
        if handler is None and command.name in self.modules.commands():
            handler = self.modules.execute
        if handler is None:
            known = ", ".join(sorted(self._command_handlers)) or "none"
            raise CommandError("unknown_command", f"no command {command.name!r} (known: {known})")
        _LOGGER.info(
            "command %s for %s from %s (id %s)",
            command.name,
            command.meter,
            command.source,
            command.id,
        )
        return await handler(command)

    @property
    def commands(self) -> tuple[str, ...]:
        """Names of the commands that can be executed."""
        return tuple(sorted({*self._command_handlers, *self.modules.commands()}))

    def command_spec(self, name: str) -> CommandSpec | None:
        """The command table's row for ``name``: the engine's, or that of a configured module's
        type (the others are not imported: ``gateway.commands.table`` has them all)."""
        return COMMANDS.get(name) or self.modules.command_spec(name)

    # lifecycle ---------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin an orderly shutdown."""
        self._stop.set()

    def request_reload(self) -> None:
        """Re-read the config file and apply what changed."""
        self._reload.set()

    async def serve(self) -> None:
        """Run until asked to stop; then stop modules, flush, and close outputs in order."""
        loop = asyncio.get_running_loop()
        for signum, handler in (
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
            (signal.SIGHUP, self.request_reload),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, handler)
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self.outputs = list(self._output_factory(self))
                output_tasks = [
                    group.create_task(output.run(), name=f"output[{output.name}]")
                    for output in self.outputs
                ]
                for module in self.settings.modules:
                    self.modules.start(group, module)
                housekeeping = [
                    group.create_task(self._flush_loop(), name="flush"),
                    group.create_task(self._publish_loop(), name="publish"),
                    group.create_task(self._tick_loop(), name="tick"),
                    group.create_task(self._watchdog_loop(), name="watchdog"),
                ]
                # READY says what runs: one turn of the loop lets every module task enter its
                # run() (or fail) first, so the status line no longer reads "0/N modules running".
                await asyncio.sleep(0)
                self.ready.set()
                self.notifier.ready(self.status_line())
                _freeze_start_up()
                _LOGGER.info(
                    "gateway %s started: %s", self.settings.gateway.name, self.status_line()
                )
                await self._wait_for_stop()
                self.notifier.stopping()
                _LOGGER.info("stopping")
                async with asyncio.timeout(self.settings.gateway.shutdown_timeout_s):
                    await self.modules.stop(self.modules.names)
                    for task in housekeeping:
                        task.cancel()
                    self.persist()
                    for meter in list(self.meters.unpublished):
                        self.publish(meter)
                    for task in output_tasks:
                        task.cancel()
        finally:
            self._group = None
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
            self.persist()
            self._save_wall_clock()
            if self.store_problem is None:
                mark_stopped(self.store)
            self.store.close()

    def flush(self) -> None:
        """Checkpoint what the engines changed (one transaction for all meters); outputs queue
        profile and billing messages inside it."""
        with self.store.transaction():
            if self._clock_save_due:
                self._save_wall_clock()
            self.meters.flush(self.outputs)
            self._write_kept_states()
        # A gateway-counting meter's shown totals move only here: its state follows at once,
        # so every output (MQTT, the Z-Wave node reading the same view) agrees.
        recounted, self.meters.recounted = self.meters.recounted, set()
        for meter in recounted:
            self.publish(meter)

    def status_line(self) -> str:
        """One line for systemd and logs."""
        running = sum(1 for h in self.health.values() if h.state == "running")
        line = f"{running}/{len(self.health)} modules running, {len(self.engines)} meters"
        if self.store_problem is not None:
            line += f"; STORE NOT WRITABLE: {self.store_problem}"
        if not self.clock.trusted:
            line += f"; {self.clock.why_not}"
        return line

    # internals ---------------------------------------------------------------------------------

    def _apply(self, update: Update, *, noted: bool = False) -> None:
        if not update:
            return
        if not noted:
            events = self.meters.note(update)
            if events:
                self.report_all(events)
            due = self.meters.due_checkpoint(update)
            if due == "soon":
                # A debiting stop, a tariff or breaker switch: rare, and must last soon.
                self._checkpoint_soon()
            elif due == "now":
                self.persist()
        for action in update.actions:
            self.modules.switch(update.meter, action.module, action.state)
        if update.registers:
            self.modules.state_changed(update.meter)
            live = self.meters.live(update)
            if live.registers:
                for output in self.outputs:
                    output.on_live(live)
            self._publish_if_due(update.meter)
            self._log_summary(update.meter)

    def _publish_if_due(self, meter: str) -> None:
        """The meter's state to every output from memory, at most once per publish interval
        (a faster meter is coalesced: its newest registers go out at the interval)."""
        now = self._monotonic()
        interval = self.settings.gateway.publish_interval_s
        if now - self._last_publish.get(meter, float("-inf")) >= interval * PUBLISH_SLACK:
            self.publish(meter)

    def publish(self, meter: str) -> None:
        """Hand the meter's published registers to every output now."""
        if not self.meters.publishable(meter):
            return  # its own totals are withheld until it is heard after an unclean stop
        self.meters.unpublished.discard(meter)
        self._last_publish[meter] = self._monotonic()
        registers = self.meters.published(meter)
        for output in self.outputs:
            output.on_state(meter, registers)
        self.modules.state_changed(meter)  # a checkpoint may have moved what is shown

    async def _publish_loop(self) -> None:
        """State messages a meter's faster samples held back go out at the interval."""
        while True:
            interval = self.settings.gateway.publish_interval_s
            await asyncio.sleep(interval / PUBLISH_CHECKS_PER_INTERVAL)
            for meter in list(self.meters.unpublished):
                self._publish_if_due(meter)

    async def _engine_command(self, command: Command) -> Mapping[str, Any]:
        engine = self.engines.get(command.meter)
        if engine is None:
            raise CommandError("unknown_meter", f"no meter {command.meter!r}")
        if not self.clock.check():
            raise CommandError("clock_not_set", self.clock.why_not)
        try:
            # Events that waited through a store fault go first, so the log stays in order.
            self._write_unsaved_events()
        except (sqlite3.Error, OSError, StoreError) as err:
            self._store_failed(err)
            raise self._not_stored(command, err) from None
        saved = self.meters.checkpoint(command.meter)
        update, result = engine.command(command.name, command.args, utc_now())
        try:
            events = self._commit_command(update)
        except (sqlite3.Error, OSError, StoreError) as err:
            self.meters.restore(command.meter, saved, update)
            self._store_failed(err)
            raise self._not_stored(command, err) from None
        for event in events:
            _LOGGER.info("event %s on %s: %s", event.kind, event.meter, event.detail)
        self._apply(Update(update.meter, update.registers, actions=update.actions), noted=True)
        self.publish(command.meter)  # a top-up or a switch shows at once, not coalesced
        return result

    def _commit_command(self, update: Update) -> list[Event]:
        """A command's events, registers and engine state in one transaction: a command is
        applied and logged together, or (disk full, read-only) not at all."""
        with self.store.transaction():
            events = self.meters.note(update)
            for event in events:
                (event_id,) = self.store.add_events([event])
                for output in self.outputs:
                    output.on_event(event_id, event)
            self.flush()  # commands are rare and deliberate: durable at once
        return events

    @staticmethod
    def _not_stored(command: Command, err: BaseException) -> CommandError:
        return CommandError(
            "not_stored",
            f"{command.name} was not applied: the store cannot be written"
            f" ({describe_store_error(err)}); nothing changed, retry later",
        )

    def _log_summary(self, meter: str) -> None:
        now = time.monotonic()
        if not self._warmed_up:
            # Asked once per sample: past the warm-up the wall clock is no longer read.
            if (utc_now() - self.started_at).total_seconds() < SUMMARY_WARMUP_S:
                # A newcomer sees each meter's values move at once.
                if now - self._last_summary.get(meter, float("-inf")) >= 2.0:  # noqa: PLR2004 - every 2 s in the warm-up
                    self._last_summary[meter] = now
                    _LOGGER.info("meter %s: %s", meter, self.meters.summary(meter, _SUMMARY_CODES))
                return
            self._warmed_up = True
        if now - self._last_summary.get("", float("-inf")) < SUMMARY_EVERY_S:
            return
        self._last_summary[""] = now
        meters = list(self.engines)
        parts = [
            f"meter {m}: {self.meters.summary(m, _SUMMARY_CODES)}"
            for m in meters[:SUMMARY_METERS_MAX]
        ]
        if len(meters) > SUMMARY_METERS_MAX:
            parts.append(f"and {len(meters) - SUMMARY_METERS_MAX} more meters")
        _LOGGER.info("%s", "; ".join(parts))

    async def _wait_for_stop(self) -> None:
        while not self._stop.is_set():
            stop = asyncio.ensure_future(self._stop.wait())
            reload = asyncio.ensure_future(self._reload.wait())
            try:
                await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                reload.cancel()
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                # What the old settings held (engines rebuilt, say) may be garbage now: back
                # within the collector's reach (collected in its own time, not frozen again).
                gc.unfreeze()
                await self._apply_reload()

    async def _apply_reload(self) -> None:
        # SIGHUP checkpoints, whatever the reload then does; a store that cannot be written is
        # said (persist) and must not stop the reload, nor the gateway.
        self.persist()
        if self.config_path is None:
            _LOGGER.info("SIGHUP ignored: running on the embedded default config")
            return
        self.notifier.reloading()
        try:
            new = config_module.load(self.config_path)
        except ConfigError as err:
            _LOGGER.error("reload refused, keeping the running config: %s", err)
            self.notifier.ready(self.status_line())
            return
        old_modules = {m.name: m for m in self.settings.modules}
        new_modules = {m.name: m for m in new.modules}
        changed = [name for name, module in old_modules.items() if new_modules.get(name) != module]
        await self.modules.stop(changed)
        self.settings = new
        self.meters.sync(new)
        for name in changed:
            self.modules.forget(name)
        assert self._group is not None
        for name, module in new_modules.items():
            if name not in self.modules.names:
                self.modules.start(self._group, module)
        _LOGGER.info(
            "reloaded %s: restarted/stopped %s, started %s",
            self.config_path,
            ", ".join(changed) or "nothing",
            ", ".join(n for n in new_modules if n not in old_modules) or "nothing",
        )
        self.notifier.ready(self.status_line())

    def _checkpoint_soon(self) -> None:
        """Checkpoint within GATHER_AT_ONCE_S, together with the other meters due by then (at
        once when not serving: there is no flush loop to gather in)."""
        if self._group is None:
            self.persist()
        else:
            self._checkpoint_due.set()

    async def _flush_loop(self) -> None:
        while True:
            uptime = (utc_now() - self.started_at).total_seconds()
            interval = self.settings.gateway.checkpoint_s
            # A newcomer sees the store (and gateway-counted totals) move at once; then the SD
            # card is spared.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                    min(interval, 1.0) if uptime < SUMMARY_WARMUP_S else interval
                ):
                    await self._checkpoint_due.wait()
                # Never later than the interval would have written it (a UPS's few seconds).
                await asyncio.sleep(min(GATHER_AT_ONCE_S, interval))
            self._checkpoint_due.clear()
            self.persist()

    def persist(self) -> None:
        """One round of the flush loop: put a deleted database file back, write what waits,
        and say clearly (log, STATUS) when the store cannot be written, and when it can again."""
        try:
            moved = self.store.file_problem()
            if moved is not None:
                _LOGGER.error("store: %s; writing everything committed back to it", moved)
                self.store.restore_file()
                _LOGGER.warning("store: %s written back from the open database", self.store.path)
            self._write_unsaved_events()
            self.flush()
        except (sqlite3.Error, OSError, StoreError) as err:
            self._store_failed(err)
            return
        except Exception:
            _LOGGER.exception("cannot write registers to %s; will retry", self.store.path)
            return
        if self._store_health.written():
            self.notifier.status(self.status_line())

    def _store_failed(self, err: BaseException) -> None:
        changed = self._store_health.failed(
            err,
            events_waiting=len(self._unsaved_events),
            events_given_up=self._events_given_up,
        )
        if changed:
            self.notifier.status(self.status_line())

    async def _tick_loop(self) -> None:
        prune = PruneSchedule()
        while True:
            await asyncio.sleep(TICK_S)
            if not self._clock_believable():
                continue
            now = utc_now()
            for update in self.meters.tick(now):
                self._apply(update)
            # Not while a download reads: it would cut rows out of the file half-way
            # (``Snapshot``); the prune runs at the first tick after the last one ends.
            if not self.store.long_reads and prune.due(self._monotonic()):
                try:
                    self.meters.prune(now)
                except (GatewayError, sqlite3.Error) as err:
                    # A full or read-only disk must not stop the clock; the next prune retries.
                    _LOGGER.warning("cannot prune old rows in %s: %s", self.store.path, err)

    def _clock_believable(self) -> bool:
        """Look at the wall clock once a tick: believable yet, set since the last look?"""
        if not self.clock.check():
            if not self._clock_said:
                self._clock_said = True
                _LOGGER.warning("%s; meter samples wait until then", self.clock.why_not)
                self.notifier.status(self.status_line())
            return False
        if self._clock_said:
            self._clock_said = False
            _LOGGER.warning(
                "system clock believed from %s on (%d samples held back before)",
                self.clock.now().isoformat(timespec="seconds"),
                self.samples_held,
            )
            self.notifier.status(self.status_line())
        stepped = self.clock.step()
        if stepped is not None:
            expected, actual = stepped
            _LOGGER.warning(
                "system clock set by %+.0f s (to %s)",
                (actual - expected).total_seconds(),
                actual.isoformat(timespec="seconds"),
            )
            for engine in self.engines.values():
                self._apply(engine.clock_stepped(expected, actual))
        if time.monotonic() - self._clock_saved >= CLOCK_SAVE_EVERY_S:
            # Not a commit of its own: the next checkpoint carries it (README "Durability").
            self._clock_save_due = True
        return True

    def _save_wall_clock(self) -> None:
        if not self.clock.trusted:
            return
        try:
            save_wall_clock(self.store, self.clock.now())
        except (sqlite3.Error, OSError, StoreError) as err:
            self._store_failed(err)
            return
        self._clock_saved = time.monotonic()
        self._clock_save_due = False

    async def _watchdog_loop(self) -> None:
        period = (self.notifier.watchdog_s or 10.0) / 2
        while True:
            before = time.monotonic()
            await asyncio.sleep(period)
            lag = time.monotonic() - before - period
            # A store that cannot be written is said in STATUS and waited out: a restart
            # would not free the disk, and the meters' live values would stop meanwhile.
            if lag < MAX_LOOP_LAG_S:
                self.notifier.watchdog()
            else:
                _LOGGER.warning("unhealthy (loop lag %.1f s): no watchdog ping", lag)
            self.notifier.status(self.status_line())


def _freeze_start_up() -> None:
    """Keep what start-up built (configuration, engines, imported modules) out of the cycle
    collector's walks: it lives as long as the process, and at 1,000 meters each full
    collection walked it for 40-50 ms of the event loop (bench/e2e.py's loop lag). A reload
    unfreezes it, so what the new settings replace can still be collected."""
    gc.freeze()
