"""``type = "tcpip"``: a TCP peer (Kamstrup IP module, ser2net, a serial server) carrying a meter
protocol."""

from __future__ import annotations

from typing import ClassVar

from gateway.adapter import ModuleContext
from gateway.engine.commands import CommandSpec
from gateway.transport import open_link
from modules.sessions import LinkConfig, run_session

__all__ = ["TcpipAdapter", "TcpipConfig"]


class TcpipConfig(LinkConfig, frozen=True, kw_only=True):
    """``[[modules]] type = "tcpip"``: the peer's host and port, and the protocol it carries."""

    host: str
    port: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.port < 65536:  # noqa: PLR2004 - the range its message states
            raise ValueError(f"port {self.port} is not a TCP port")


class TcpipAdapter:
    """Polls a meter through a TCP connection with the configured protocol's session.

    The line speed belongs to whatever serial server sits at the far end; IEC 62056-21 stays at
    its sign-on speed (``ACK 0Z0`` names the current one), since the link cannot follow a switch.
    """

    Config = TcpipConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: TcpipConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Connect and run the protocol's session until cancelled or the peer is lost."""
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        async with open_link(f"socket://{host}:{self.config.port}") as link:
            await run_session(link, self.config, ctx)
