"""``type = "rs485"``: a serial line to the meter's RS485 or RS232 data module."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from gateway.adapter import ModuleContext
from gateway.engine.commands import CommandSpec
from gateway.transport import SerialSettings, open_link
from modules.sessions import SerialLinkConfig, run_session

__all__ = ["Rs485Adapter", "Rs485Config"]


class Rs485Config(SerialLinkConfig, frozen=True, kw_only=True):
    """``[[modules]] type = "rs485"``: the tty, the protocol, and line settings if not its own."""

    # Let the kernel drive RTS as the transmit enable (UART HATs on the Pi's GPIO header); USB
    # RS485 adapters switch direction by themselves and RS232 modules need nothing.
    rs485: bool = False

    def serial_settings(self) -> SerialSettings:
        """The protocol's settings, this module's overrides, and the RS485 direction control."""
        return dataclasses.replace(super().serial_settings(), rs485=self.rs485)


class Rs485Adapter:
    """Polls a meter over a serial data module with the configured protocol's session."""

    Config = Rs485Config
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: Rs485Config) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Open the line and run the protocol's session until cancelled or the meter is lost."""
        async with open_link(self.config.port, self.config.serial_settings()) as link:
            await run_session(link, self.config, ctx)
