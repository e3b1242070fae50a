"""The meter protocols a serial line, a TCP peer or an IR head can carry, and their shared config.

The ``optical``, ``rs485`` and ``tcpip`` adapters only open a link; what is said over it is a
*session*, chosen by the module's ``protocol`` key from ``SESSIONS``::

    async def poll(link: Link, config: LinkConfig, ctx: ModuleContext) -> None

A session owns the open link for as long as it runs. It talks its protocol, pushes Samples with
``ctx.submit`` (OBIS-coded readings, ``at`` the meter's time when the protocol carries it),
reports unusable frames with ``ctx.frame_failed`` and events with ``ctx.event``, and runs until
it is cancelled. When the meter stops answering it raises ConnectionLost; the adapter closes the
link and the supervisor starts it again with backoff. It never returns on its own.

Adding a protocol (DLMS/COSEM over HDLC, say) is one entry here plus its session module::

    "dlms": SessionSpec("modules.dlms.session:poll", SerialSettings(9600, 8, "N", 1), "..."),

Its options go in their own Struct, added to ``LinkConfig`` as ``dlms: DlmsOptions = ...`` the
way ``kmp`` and ``iec`` are. Targets are imported lazily, so a protocol's optional dependency
cannot break the others.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, cast

from gateway import registry
from gateway.adapter import ModuleContext
from gateway.config import ModuleConfig
from gateway.transport import Link, SerialSettings
from modules.dlms.config import DlmsOptions
from modules.iec62056_21.config import IecOptions
from modules.kmp.config import KmpOptions

__all__ = ["SESSIONS", "LinkConfig", "SerialLinkConfig", "SessionSpec", "run_session"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """Where a protocol's session lives and the line settings it uses unless configured."""

    target: str  # "package.module:function"
    serial: SerialSettings
    summary: str


SESSIONS: dict[str, SessionSpec] = {
    # 382J/L optical port and data modules: 9600 8N2 (amsreader, Hal9k); MULTICAL heat meters 1200.
    "kmp": SessionSpec(
        "modules.kmp.session:poll", SerialSettings(9600, 8, "N", 2), "Kamstrup Meter Protocol"
    ),
    # Sign-on always at 300 baud 7E1 (IEC 62056-21 modes A, B and C), then the meter's speed.
    "iec62056-21": SessionSpec(
        "modules.iec62056_21.session:poll",
        SerialSettings(300, 7, "E", 1),
        "IEC 62056-21 data readout",
    ),
    # DLMS/COSEM: HDLC on a serial line (IEC 62056-46, 9600 8N1 once in mode E), the
    # wrapper on TCP port 4059 (IEC 62056-47); see modules/dlms/README.md.
    "dlms": SessionSpec(
        "modules.dlms.poll:poll", SerialSettings(9600, 8, "N", 1), "DLMS/COSEM GET polling"
    ),
}

Session = Callable[[Link, "LinkConfig", ModuleContext], Awaitable[None]]


class LinkConfig(ModuleConfig, frozen=True):
    """Keys every link module has: the meter fed, the protocol spoken and its options."""

    meter: str
    protocol: str = "kmp"  # a key of SESSIONS
    interval_s: float = 10.0  # poll interval (KMP groups without their own, IEC readouts)
    kmp: KmpOptions = KmpOptions()
    iec: IecOptions = IecOptions()
    dlms: DlmsOptions = DlmsOptions()

    def __post_init__(self) -> None:
        if self.protocol not in SESSIONS:
            known = ", ".join(sorted(SESSIONS))
            raise ValueError(f"unknown protocol {self.protocol!r} (known: {known})")
        if self.interval_s <= 0:
            raise ValueError("interval_s must be positive")

    def serial_settings(self) -> SerialSettings:
        """The line settings: the protocol's, with what the config overrides."""
        return SESSIONS[self.protocol].serial


class SerialLinkConfig(LinkConfig, frozen=True, kw_only=True):
    """A link over a local tty: the protocol's line settings unless these say otherwise."""

    port: str  # /dev/ttyUSB0, /dev/serial/by-id/..., or socket://host:port for ser2net
    baudrate: int | None = None
    bytesize: Literal[7, 8] | None = None
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None

    def serial_settings(self) -> SerialSettings:
        """The protocol's settings with this module's overrides."""
        base = SESSIONS[self.protocol].serial
        return dataclasses.replace(
            base,
            baudrate=self.baudrate or base.baudrate,
            bytesize=self.bytesize or base.bytesize,
            parity=self.parity or base.parity,
            stopbits=self.stopbits or base.stopbits,
        )


async def run_session(link: Link, config: LinkConfig, ctx: ModuleContext) -> None:
    """Run the configured protocol's session on an open link."""
    spec = SESSIONS[config.protocol]
    session = cast(Session, registry.load(spec.target))
    _LOGGER.info("%s: %s on %s", config.name, spec.summary, link.url)
    await session(link, config, ctx)
