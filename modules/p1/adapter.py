"""The P1 module: a DSMR P1 port (plain or smarty-encrypted) or a HAN port pushing DLMS.

Both kinds of port only talk: the meter sends a telegram every 1-10 s on its own once the
data-request line is raised (the P1 cable does that). The module reads, cuts telegrams out of
the stream, decodes them in the sans-IO codecs and hands OBIS readings to the meter's engine.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from gateway.adapter import ModuleContext
from gateway.engine.commands import CommandSpec
from gateway.errors import ConfigError, FatalAdapterError
from gateway.transport import open_link
from modules.codecs.dsmr.stream import P1Splitter
from modules.codecs.dsmr.telegram import DsmrDecoder
from modules.dlms.push import pump, receive_pushes
from modules.dlms.secure import SecureFrames
from modules.p1.config import P1Config

__all__ = ["P1Adapter", "P1Config"]

_LOGGER = logging.getLogger(__name__)


class P1Adapter:
    """Reads one meter's P1 (DSMR) or HAN (DLMS push) port."""

    Config = P1Config
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: P1Config) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Read telegrams until the port goes away."""
        config = self.config
        try:
            key, auth_key = config.keys()
        except (ConfigError, ValueError) as err:
            raise FatalAdapterError(f"{config.name}: {err}") from err
        serial = config.serial
        async with open_link(config.port, serial) as link:
            _LOGGER.info(
                "%s: reading %s telegrams from %s at %d %d%s%d",
                config.name,
                config.format.upper(),
                config.port,
                serial.baudrate,
                serial.bytesize,
                serial.parity,
                serial.stopbits,
            )
            if config.format == "dlms":
                await receive_pushes(
                    link,
                    ctx,
                    meter=config.meter,
                    zone=ctx.settings.zone,
                    key=key,
                    auth_key=auth_key,
                    replay_protection=config.replay_protection,
                    kamstrup_energy_wh=config.kamstrup_energy_wh,
                    silence_s=config.silence_timeout_s,
                )
                return
            frames = SecureFrames(
                ctx,
                DsmrDecoder(),
                meter=config.meter,
                zone=ctx.settings.zone,
                key=key,
                auth_key=auth_key,
                replay_protection=config.replay_protection,
            )
            await pump(link, P1Splitter(), frames, silence_s=config.silence_timeout_s)
