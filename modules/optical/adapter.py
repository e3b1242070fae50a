"""``type = "optical"``: an IR head on the meter's optical port, speaking KMP or IEC 62056-21."""

from __future__ import annotations

from typing import ClassVar

from gateway.adapter import ModuleContext
from gateway.engine.commands import CommandSpec
from gateway.transport import open_link
from modules.sessions import SerialLinkConfig, run_session

__all__ = ["OpticalAdapter", "OpticalConfig"]


class OpticalConfig(SerialLinkConfig, frozen=True, kw_only=True):
    """``[[modules]] type = "optical"``: the head's tty and the protocol (KMP by default).

    KMP runs at 9600 8N2 on the 382J/L (set ``baudrate = 1200`` for MULTICAL heat meters);
    IEC 62056-21 signs on at 300 7E1 and switches to the meter's speed (mode C).
    """


class OpticalAdapter:
    """Polls a meter through an IR head; the head's echo of every request is skipped."""

    Config = OpticalConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: OpticalConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Open the head and run the protocol's session until cancelled or the meter is lost."""
        async with open_link(self.config.port, self.config.serial_settings()) as link:
            await run_session(link, self.config, ctx)
