"""Modules under supervision: each in its own task, restarted with jittered backoff when it
fails, one failing module never stopping the others; and what reaches a running module from
outside it (module commands, the breaker's switch requests, state changes for sinks).

The Gateway (``gateway/app.py``) owns the task group and is the ``Hub`` every module context
talks to; this holds the modules' tasks, contexts and health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gateway import registry
from gateway.adapter import Adapter, ChangeBoard, Hub, ModuleContext, ModuleHealth
from gateway.backoff import Backoff
from gateway.config import ModuleConfig
from gateway.engine.commands import CommandSpec, Queued, as_mapping
from gateway.errors import AdapterError, CommandError, FatalAdapterError
from gateway.model import Command, Position, SwitchRequest, utc_now
from gateway.ratelog import RateLimitedLog
from modules.codecs.errors import CodecError

__all__ = ["ModuleSupervisor"]

_LOGGER = logging.getLogger(__name__)


class ModuleSupervisor:
    """The configured modules' tasks, contexts and health."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.health: dict[str, ModuleHealth] = {}
        self._modules: dict[str, tuple[ModuleConfig, asyncio.Task[None]]] = {}
        self._contexts: dict[str, ModuleContext] = {}
        self._board = ChangeBoard()

    @property
    def names(self) -> list[str]:
        """The modules started (running or in backoff), in start order."""
        return list(self._modules)

    def task(self, name: str) -> asyncio.Task[None]:
        """The task that supervises module ``name``."""
        return self._modules[name][1]

    def start(self, group: asyncio.TaskGroup, module: ModuleConfig) -> None:
        """Run ``module`` in ``group`` until stopped (a disabled one is left out)."""
        if not module.enabled:
            return
        health = ModuleHealth(module.name, module.type)
        self.health[module.name] = health
        task = group.create_task(self._supervise(module, health), name=f"module[{module.name}]")
        self._modules[module.name] = (module, task)

    async def stop(self, names: Sequence[str]) -> None:
        """Cancel these modules and wait until each has released what it held."""
        stopping: dict[str, asyncio.Task[None]] = {}
        for name in names:
            entry = self._modules.pop(name, None)
            context = self._contexts.pop(name, None)
            if context is not None:
                self._board.discard(context.subscriptions)
            if entry is not None:
                entry[1].cancel()
                stopping[name] = entry[1]
        for name, task in stopping.items():
            with contextlib.suppress(asyncio.CancelledError):
                await task
            health = self.health.get(name)
            if health is not None:
                health.state = "stopped"

    def forget(self, name: str) -> None:
        """Drop a stopped module's health (a reload removed or replaced it)."""
        self.health.pop(name, None)

    # what reaches a running module --------------------------------------------------------------

    def commands(self) -> dict[str, list[str]]:
        """Commands the started modules take (their adapter's ``COMMANDS``) -> module names."""
        routes: dict[str, list[str]] = {}
        for name, (module, _task) in self._modules.items():
            adapter: type[Adapter] = registry.adapter_class(module.type)
            for spec in adapter.COMMANDS:
                routes.setdefault(spec.name, []).append(name)
        return routes

    def command_spec(self, name: str) -> CommandSpec | None:
        """The command table's row for a command a started module's type takes, or None."""
        for module, _task in self._modules.values():
            adapter: type[Adapter] = registry.adapter_class(module.type)
            for candidate in adapter.COMMANDS:
                if candidate.name == name:
                    return candidate
        return None

    async def execute(self, command: Command) -> Mapping[str, Any]:
        """Queue a command for the module that serves the command's meter."""
        wanted = command.args.get("module")  # several modules on one meter: say which
        for name in self.commands()[command.name]:
            context = self._contexts.get(name)
            if wanted is not None and name != wanted:
                continue
            if context is not None and context.meter in (None, command.meter):
                context.commands.put_nowait(command)
                return as_mapping(Queued(queued=True, module=name))
        raise CommandError(
            "no_module", f"no running module takes {command.name!r} for meter {command.meter!r}"
        )

    def switch(self, meter: str, module: str, position: Position) -> None:
        """Hand a breaker switch to its actuator module; the engine times out if none answers."""
        context = self._contexts.get(module)
        if context is None:
            _LOGGER.warning("breaker of %s: actuator module %s is not running", meter, module)
            return
        request = SwitchRequest(meter, position, f"breaker-{utc_now().isoformat()}")
        context.switch_requests.put_nowait(request)

    def state_changed(self, meter: str) -> None:
        """Tell the sinks subscribed to ``meter`` that its registers may have changed."""
        self._board.notify(meter)

    # internals ---------------------------------------------------------------------------------

    async def _supervise(self, module: ModuleConfig, health: ModuleHealth) -> None:
        """Run one module forever, restarting it with jittered backoff when it fails."""
        backoff = Backoff()
        failures, restarts = RateLimitedLog(_LOGGER), RateLimitedLog(_LOGGER)
        while True:
            adapter: Adapter = registry.adapter_class(module.type)(module)
            before = self._contexts.get(module.name)
            if before is not None:  # a restart: the old run's subscriptions go with it
                self._board.discard(before.subscriptions)
            context = ModuleContext(self._hub, module, health, self._board)
            self._contexts[module.name] = context
            health.state, health.since = "running", utc_now()
            started = time.monotonic()
            try:
                await adapter.run(context)
                reason = "run() returned"
                delay = backoff.next_delay(time.monotonic() - started)
            except FatalAdapterError as err:
                reason = str(err)
                delay = backoff.fatal_delay()
            except (AdapterError, CodecError, OSError) as err:
                # A frame error that escapes a module (the codecs' own tree, which knows nothing
                # of adapters) is a device failure like a lost link: restart with backoff.
                reason = str(err) or type(err).__name__
                delay = backoff.next_delay(time.monotonic() - started)
            except Exception as err:  # noqa: BLE001 - logged below, with its traceback
                # A bug in one module must not take the others down; the traceback says where
                # (once per REPEAT_LOG_EVERY_S: a module crashing at every start repeats it).
                failures.log(logging.ERROR, "module %s crashed", module.name, exc_info=True)
                reason = f"{type(err).__name__}: {err}"
                delay = backoff.next_delay(time.monotonic() - started)
            health.last_error = reason
            health.restarts += 1
            health.state, health.since = "backoff", utc_now()
            if health.communicating:
                health.communicating = False
                context.event("communication_lost", f"module {module.name}: {reason}")
            # A device that stays away fails at every backoff step: one line a minute at most,
            # with the count, never one per attempt (logs wear the SD card too).
            message = f"module {module.name} stopped ({reason}); restarting in {delay:.1f} s"
            if not restarts.warning("%s", message):
                _LOGGER.debug("%s", message)
            await asyncio.sleep(delay)
