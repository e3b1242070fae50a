"""The LAN side: JSON API, live web page with the 382L display, /metrics and zeroconf."""

from gateway.lan.server import LanServer

__all__ = ["LanServer"]
