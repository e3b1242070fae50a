"""What every breaker actuator module shares: the position to hold and how to report it.

The engine's breaker is the authority on where the breaker should be; an actuator makes that
real and reports what it sees as a ``breaker_feedback`` reading ("open" or "closed"), which the
engine turns into a confirmation or a mismatch event. It is never a safety function.
"""

from __future__ import annotations

import logging
from typing import Literal

from gateway.adapter import ModuleContext
from gateway.engine.book import BREAKER_FEEDBACK, BREAKER_STATE
from gateway.model import Command, Reading, Sample, utc_now

__all__ = [
    "ACTUATE",
    "Position",
    "check_wiring",
    "desired_position",
    "report",
    "target_of",
]

_LOGGER = logging.getLogger(__name__)

Position = Literal["open", "closed"]
# The command gateway/app.py queues for the breaker's actuator module. Adapters must not list
# it in COMMANDS: only the engine's breaker may switch, never an MQTT or HTTP client directly.
ACTUATE = "actuate"


def target_of(command: Command) -> Position | None:
    """The position an ``actuate`` command asks for, None for anything else."""
    if command.name != ACTUATE:
        return None
    state = command.args.get("state")
    if state == "open":
        return "open"
    if state == "closed":
        return "closed"
    return None


def desired_position(ctx: ModuleContext) -> Position | None:
    """Where the engine's breaker wants this module's meter to be; None when it has no breaker."""
    register = ctx.registers().get(BREAKER_STATE)
    if register is None:
        return None
    return "closed" if register.value == "connected" else "open"


def check_wiring(ctx: ModuleContext, logger: logging.Logger = _LOGGER) -> bool:
    """True when this module is the actuator of its meter's breaker; warn once otherwise.

    ``logger`` is the calling module's, so the warning names the module type that has it."""
    meter = ctx.meter
    if meter is None:
        return False
    try:
        breaker = ctx.settings.meter(meter).breaker
    except KeyError:
        return False
    if breaker.enabled and breaker.actuator == ctx.name:
        return True
    logger.warning(
        "%s: meter %s does not name this module as its breaker actuator"
        " ([meters.breaker] enabled = true, actuator = %r): it will not be switched",
        ctx.name,
        meter,
        ctx.name,
    )
    return False


def report(ctx: ModuleContext, position: Position) -> None:
    """Tell the engine where the breaker is."""
    assert ctx.meter is not None
    # A sample must not move the meter's clock back: an accelerated or fast meter clock runs
    # ahead of ours, and the engine treats an earlier sample as a clock adjustment.
    newest = max((register.at for register in ctx.registers().values()), default=None)
    now = utc_now()
    at = max(now, newest) if newest is not None else now
    ctx.submit(Sample(ctx.meter, ctx.name, at, (Reading(BREAKER_FEEDBACK, position, None),)))
