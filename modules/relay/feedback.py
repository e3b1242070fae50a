"""What every breaker actuator module shares: the position to hold and the wiring check.

The engine's breaker is the authority on where the breaker should be; an actuator (the role in
``gateway/adapter.py``) takes its ``SwitchRequest``s, makes them real and reports what it sees
(``report_position``: a ``breaker_feedback`` reading "open" or "closed"), which the engine
turns into a confirmation or a mismatch event. It is never a safety function.
"""

from __future__ import annotations

import logging

from gateway.adapter import Actuator
from gateway.engine.book import BREAKER_STATE
from gateway.model import Position

__all__ = ["check_wiring", "desired_position"]

_LOGGER = logging.getLogger(__name__)


def desired_position(ctx: Actuator) -> Position | None:
    """Where the engine's breaker wants this module's meter to be; None when it has no breaker."""
    register = ctx.registers().get(BREAKER_STATE)
    if register is None:
        return None
    return "closed" if register.value == "connected" else "open"


def check_wiring(ctx: Actuator, logger: logging.Logger = _LOGGER) -> bool:
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
