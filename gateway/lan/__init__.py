"""The LAN side: JSON API, live web page with the 382L display, /metrics and zeroconf."""

from gateway.lan.server import LanServer
from gateway.view import GatewayView, Output

__all__ = ["LanServer", "outputs"]


def outputs(view: GatewayView) -> list[Output]:
    """The ``http`` output (the registry asks only when ``[http]`` is enabled)."""
    return [LanServer(view)]
