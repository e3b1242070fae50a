"""The engine's commands, and the shape of every row of the command table: who may send a
command, its typed arguments, its typed result, what carries it out.

HTTP and MQTT both validate through the table before anything runs, so a refusal is the same
on both and always names the argument. Module commands (such as the S0 module's ``set_total``)
are rows of the same shape that their adapters declare in ``COMMANDS``; ``gateway.commands``
joins both into the one table the HTTP API, the MQTT command topics, the OpenAPI document and
the README's command list are generated from.

Pure: no I/O, no asyncio. Handlers take the engine, the typed arguments and the time, and
return the command's result Struct.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol

import msgspec

from gateway import obis
from gateway.contracts.http import DisplayState
from gateway.engine.book import ACTIVE_TARIFF, Book
from gateway.engine.display import Display
from gateway.engine.intervals import Intervals
from gateway.engine.protection import Protection
from gateway.engine.update import Update
from gateway.errors import CommandError

__all__ = [
    "ANYONE",
    "COMMANDS",
    "MAX_TOP_UP",
    "REMOTE",
    "BreakerResult",
    "CommandArgs",
    "CommandResult",
    "CommandSpec",
    "ModuleArgs",
    "NoArgs",
    "Queued",
    "Sender",
    "as_mapping",
    "parse_args",
    "sender_of",
]

Sender = Literal["http", "mqtt", "button", "internal"]
# A single top-up above this is a typo or an attack (the unit is the meter's prepayment unit).
MAX_TOP_UP = Decimal(100_000)
# Limits beyond these are no limits at all (a 1 MW household breaker, a 100 kA current).
MAX_POWER_W = 1_000_000.0
MAX_CURRENT_A = 100_000.0
MAX_DURATION_S = 86_400.0
_ID_CHARS = 64


class CommandArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Arguments of a command; unknown keys are refused."""


class NoArgs(CommandArgs, frozen=True):
    """The command takes no arguments."""


class ModuleArgs(CommandArgs, frozen=True, kw_only=True):
    """Arguments of a module's command: with several modules on one meter, ``module`` says
    which one (its ``name`` in the config)."""

    module: str | None = None


class CommandResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a command carried out answers (``result`` over HTTP and in MQTT replies)."""


class Queued(CommandResult, frozen=True):
    """A module command handed to the module; what it does shows in its events."""

    queued: bool
    module: str


class DebitingStopResult(CommandResult, frozen=True):
    """The billing period just closed (``at`` in ISO 8601)."""

    number: int
    at: str


class TariffResult(CommandResult, frozen=True):
    """The tariff now counted into."""

    tariff: int


class DisplayListResult(CommandResult, frozen=True):
    """The display list as it is now."""

    list: Literal["auto", "manual", "battery"]
    readings: tuple[str, ...]


class BreakerResult(CommandResult, frozen=True):
    """The breaker after the command (``actuator``: confirmed, pending or failed)."""

    state: str
    causes: list[str]
    actuator: str


class TopUpResult(CommandResult, frozen=True):
    """The credit after the top-up, a decimal string in ``unit``."""

    balance: str
    unit: str


class LimitsResult(CommandResult, frozen=True):
    """Every limit overridden so far (those never overridden are left out)."""

    power_w: float | msgspec.UnsetType = msgspec.UNSET
    current_a: float | msgspec.UnsetType = msgspec.UNSET
    duration_s: float | msgspec.UnsetType = msgspec.UNSET


class AcceptingResult(CommandResult, frozen=True):
    """The next readings are taken as they come."""

    accepting: bool


class PublishedResult(CommandResult, frozen=True):
    """How many discovery configs were published again."""

    published: int


class SetTariffArgs(CommandArgs, frozen=True):
    """``set_tariff``: the tariff register to count into."""

    tariff: Annotated[int, msgspec.Meta(ge=1, le=4)]


class SetDisplayListArgs(CommandArgs, frozen=True):
    """``set_display_list``: replace one of the LCD's reading lists."""

    list: Literal["auto", "manual", "battery"]
    readings: Annotated[tuple[str, ...], msgspec.Meta(min_length=1, max_length=30)]

    def __post_init__(self) -> None:
        for index, code in enumerate(self.readings):
            try:
                obis.parse(code)
            except ValueError:
                raise ValueError(
                    f"`readings[{index}]` {code[:40]!r} is not an OBIS code (A-B:C.D.E)"
                ) from None


class TopUpArgs(CommandArgs, frozen=True):
    """``top_up``: credit from a vending system, each with its own id and a rising sequence."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=_ID_CHARS)]
    sequence: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
    amount: Decimal

    def __post_init__(self) -> None:
        if not self.amount.is_finite() or not 0 < self.amount <= MAX_TOP_UP:
            raise ValueError(f"`amount` must be a number above 0 and at most {MAX_TOP_UP}")


class SetLimitsArgs(CommandArgs, frozen=True):
    """``set_limits``: override the supply monitor's limits (at least one)."""

    power_w: Annotated[float, msgspec.Meta(gt=0, le=MAX_POWER_W)] | None = None
    current_a: Annotated[float, msgspec.Meta(gt=0, le=MAX_CURRENT_A)] | None = None
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_DURATION_S)] | None = None

    def __post_init__(self) -> None:
        given = self.overrides()
        if not given:
            raise ValueError("give at least one of `power_w`, `current_a`, `duration_s`")
        for key, value in given.items():
            if not math.isfinite(value):
                raise ValueError(f"`{key}` must be a finite number")

    def overrides(self) -> dict[str, float]:
        """The limits given, by name."""
        return {
            key: float(value)
            for key in ("power_w", "current_a", "duration_s")
            if (value := getattr(self, key)) is not None
        }


class Engine(Book, Protocol):
    """The meter engine as its commands see it (``MeterEngine`` is one; the table does not
    import it, because the engine dispatches through the table)."""

    intervals: Intervals
    display: Display
    protection: Protection

    def display_state(self, now: datetime, *, powered: bool = True) -> dict[str, Any]:
        """What the LCD shows now."""
        ...


Handler = Callable[[Engine, Any, Any], tuple[Update, msgspec.Struct]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One row of the table."""

    name: str
    summary: str
    senders: frozenset[Sender]
    args: type[CommandArgs]
    result: type[msgspec.Struct]
    # Commands that change nothing (they re-send what is already known) stay open on MQTT
    # without a secret; every other one needs one there.
    changes_state: bool = True
    # Carried out by the meter's engine; None: by whoever registered it (an output).
    engine: Handler | None = None


def _debiting_stop(engine: Engine, _args: NoArgs, now: Any) -> tuple[Update, DebitingStopResult]:
    update = Update(engine.meter_id)
    record = engine.intervals.debiting_stop(now, dict(engine.state.last), update, estimated=False)
    return update, DebitingStopResult(number=record.number, at=record.at.isoformat())


def _set_tariff(engine: Engine, args: SetTariffArgs, now: Any) -> tuple[Update, TariffResult]:
    if engine.settings.tariff.source != "command":
        raise CommandError(
            "not_allowed", f"the tariff comes from the {engine.settings.tariff.source}"
        )
    update = Update(engine.meter_id)
    engine.state.external_tariff = args.tariff
    engine.put(update, ACTIVE_TARIFF, args.tariff, None, now)
    return update, TariffResult(tariff=args.tariff)


def _display_push(engine: Engine, _args: NoArgs, now: Any) -> tuple[Update, DisplayState]:
    engine.display.push(now, engine.active_tariff(now))
    return Update(engine.meter_id), msgspec.convert(engine.display_state(now), DisplayState)


def _set_display_list(
    engine: Engine, args: SetDisplayListArgs, now: Any
) -> tuple[Update, DisplayListResult]:
    engine.display.set_list(args.list, args.readings, engine.active_tariff(now))
    return Update(engine.meter_id), DisplayListResult(list=args.list, readings=args.readings)


def _switched(
    engine: Engine, now: Any, events: list[Any], actions: list[Any]
) -> tuple[Update, BreakerResult]:
    update, state = engine.protection.result(now, Update(engine.meter_id), events, actions)
    return update, BreakerResult(
        state=state["state"], causes=state["causes"], actuator=state["actuator"]
    )


def _breaker(operation: str) -> Handler:
    def remote(engine: Engine, _args: NoArgs, now: Any) -> tuple[Update, BreakerResult]:
        events, actions = engine.breaker.remote(operation, now)
        return _switched(engine, now, events, actions)

    return remote


def _button(engine: Engine, _args: NoArgs, now: Any) -> tuple[Update, BreakerResult]:
    events, actions = engine.breaker.button(now)
    return _switched(engine, now, events, actions)


def _top_up(engine: Engine, args: TopUpArgs, now: Any) -> tuple[Update, TopUpResult]:
    update = Update(engine.meter_id)
    events, balance = engine.prepayment.top_up(args.id, args.sequence, args.amount, now)
    update.events += events
    engine.protection.enforce_prepayment(now, update)
    engine.protection.publish(now, update)
    return update, TopUpResult(balance=str(balance), unit=engine.settings.prepayment.unit)


def _set_limits(engine: Engine, args: SetLimitsArgs, _now: Any) -> tuple[Update, LimitsResult]:
    limits = engine.protection.set_limits(args.overrides())
    return Update(engine.meter_id), msgspec.convert(limits, LimitsResult)


def _accept_registers(engine: Engine, _args: NoArgs, now: Any) -> tuple[Update, AcceptingResult]:
    update = Update(engine.meter_id)
    engine.state.rebase = True
    update.events.append(
        engine.event(now, "registers_rebased", "the next readings are accepted as they come")
    )
    return update, AcceptingResult(accepting=True)


REMOTE: frozenset[Sender] = frozenset({"http", "mqtt", "internal"})
ANYONE: frozenset[Sender] = frozenset({"http", "mqtt", "button", "internal"})

COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec(
            "accept_registers",
            "Accept the next readings as they come (after a meter exchange or a reset).",
            REMOTE,
            NoArgs,
            AcceptingResult,
            engine=_accept_registers,
        ),
        CommandSpec(
            "arm",
            "Arm the breaker for a local reconnect.",
            REMOTE,
            NoArgs,
            BreakerResult,
            engine=_breaker("arm"),
        ),
        CommandSpec(
            "button",
            "The breaker's local push button (a GPIO input or the web page, never MQTT).",
            frozenset({"http", "button", "internal"}),
            NoArgs,
            BreakerResult,
            engine=_button,
        ),
        CommandSpec(
            "debiting_stop",
            "Close the debiting period now and freeze its billing values.",
            REMOTE,
            NoArgs,
            DebitingStopResult,
            engine=_debiting_stop,
        ),
        CommandSpec(
            "disconnect",
            "Open the breaker.",
            REMOTE,
            NoArgs,
            BreakerResult,
            engine=_breaker("disconnect"),
        ),
        CommandSpec(
            "display_push",
            "Press the display's push button (manual list).",
            ANYONE,
            NoArgs,
            DisplayState,
            engine=_display_push,
        ),
        CommandSpec(
            "reconnect",
            "Close the breaker (or arm it, as configured).",
            REMOTE,
            NoArgs,
            BreakerResult,
            engine=_breaker("reconnect"),
        ),
        CommandSpec(
            "resend_discovery",
            "Publish every Home Assistant discovery config again.",
            frozenset({"mqtt", "http", "internal"}),
            NoArgs,
            PublishedResult,
            changes_state=False,
        ),
        CommandSpec(
            "set_display_list",
            "Replace a display list with OBIS codes.",
            REMOTE,
            SetDisplayListArgs,
            DisplayListResult,
            engine=_set_display_list,
        ),
        CommandSpec(
            "set_limits",
            "Override the supply monitor's power, current and duration limits.",
            REMOTE,
            SetLimitsArgs,
            LimitsResult,
            engine=_set_limits,
        ),
        CommandSpec(
            "set_tariff",
            "Switch the active tariff (when the tariff comes from commands).",
            REMOTE,
            SetTariffArgs,
            TariffResult,
            engine=_set_tariff,
        ),
        CommandSpec(
            "top_up",
            "Add prepayment credit: {id, sequence, amount}, each id once, sequences rising.",
            REMOTE,
            TopUpArgs,
            TopUpResult,
            engine=_top_up,
        ),
    )
}


def sender_of(source: str) -> Sender:
    """The table's sender kind for a Command's ``source`` (``button:<module>`` is a button)."""
    kind = source.partition(":")[0]
    if kind in ("http", "mqtt", "button"):
        return kind  # type: ignore[return-value]
    return "internal"


def as_mapping(result: msgspec.Struct) -> dict[str, Any]:
    """A result as the mapping ``Gateway.execute`` answers with (fields left unset omitted)."""
    return {
        key: value
        for key, value in msgspec.structs.asdict(result).items()
        if value is not msgspec.UNSET
    }


def parse_args(spec: CommandSpec, args: Mapping[str, Any] | msgspec.Struct) -> Any:
    """The command's typed arguments, or CommandError("bad_argument") naming the field."""
    if isinstance(args, spec.args):
        return args
    if isinstance(args, msgspec.Struct):
        args = msgspec.structs.asdict(args)
    try:
        return msgspec.convert(dict(args), spec.args)
    except msgspec.ValidationError as err:
        text = str(err).replace("`$.", "`args.").replace("`$`", "`args`")
        if spec.args is NoArgs:
            text = f"{spec.name} takes no arguments, got {', '.join(sorted(args))}"
        raise CommandError("bad_argument", f"{spec.name}: {text}") from None
