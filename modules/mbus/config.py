"""``[[modules]] type = "mbus"``: one wired M-Bus (a level converter or an M-Bus/TCP gateway)
and the meters on it, each read by its primary or secondary address into a gateway meter."""

from __future__ import annotations

from typing import Literal

import msgspec

from gateway.config import ModuleConfig
from modules.codecs.mbus.frames import SecondaryAddress

__all__ = ["BAUD_RATES", "MbusConfig", "MbusDevice"]

# EN 13757-2 4.2: the bus runs at one of these rates; 2400 Bd is what meters ship with.
BaudRate = Literal[300, 600, 1200, 2400, 4800, 9600, 19200, 38400]
BAUD_RATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400)
MAX_PRIMARY_ADDRESS = 250  # 251..255 are reserved, network layer, test and broadcast


class MbusDevice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[modules.devices]]``: one meter on the bus and the gateway meter it feeds."""

    meter: str
    primary_address: int | None = None  # 0..250
    secondary_address: str | None = None  # 8 id digits or libmbus's 16 hex digits; F = any
    poll_interval_s: float = 60.0

    def __post_init__(self) -> None:
        if (self.primary_address is None) == (self.secondary_address is None):
            raise ValueError("set exactly one of primary_address and secondary_address")
        if self.primary_address is not None and not (
            0 <= self.primary_address <= MAX_PRIMARY_ADDRESS
        ):
            raise ValueError(f"primary_address {self.primary_address} is outside 0..250")
        if self.secondary_address is not None:
            SecondaryAddress.parse(self.secondary_address)  # ValueError names the problem
        if self.poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")

    @property
    def secondary(self) -> SecondaryAddress | None:
        """The secondary address pattern, if the meter is selected by one."""
        if self.secondary_address is None:
            return None
        return SecondaryAddress.parse(self.secondary_address)

    @property
    def label(self) -> str:
        """How logs and events name the device on the bus."""
        if self.primary_address is not None:
            return f"primary {self.primary_address}"
        return f"secondary {self.secondary}"


class MbusConfig(ModuleConfig, frozen=True, kw_only=True):
    """``[[modules]] type = "mbus"``."""

    port: str  # /dev/ttyUSB0, socket://host:port or tcp://host:port
    devices: tuple[MbusDevice, ...]
    baudrate: BaudRate = 2400
    # Level converters that echo the master's frames: "auto" drops a received frame that
    # is the request just sent; true also insists on the echo (no echo = converter gone).
    echo: bool | Literal["auto"] = "auto"
    retries: int = 2  # extra attempts per request after no answer or a garbled one
    max_telegrams: int = 10  # REQ_UD2 re-polls while the meter says "more records follow"
    latency_s: float = 0.1  # added to the standard's timeouts: USB converter, TCP gateway
    reconnect_after_s: float = 600.0  # no meter answered this long: reopen the port; 0 = never

    def __post_init__(self) -> None:
        if not self.devices:
            raise ValueError("list at least one device ([[modules.devices]])")
        if not 0 <= self.retries <= 10:
            raise ValueError("retries must be within 0..10")
        if not 1 <= self.max_telegrams <= 100:
            raise ValueError("max_telegrams must be within 1..100")
        if self.latency_s < 0 or self.reconnect_after_s < 0:
            raise ValueError("latency_s and reconnect_after_s cannot be negative")
        meters = [device.meter for device in self.devices]
        if len(set(meters)) != len(meters):
            raise ValueError("each gateway meter can be fed by one device only")
        addresses = [
            device.primary_address for device in self.devices if device.primary_address is not None
        ]
        if len(set(addresses)) != len(addresses):
            raise ValueError("two devices share a primary address")

    def meters_fed(self) -> tuple[str, ...]:
        """The gateway meters this bus feeds (checked against [[meters]] by the loader)."""
        return (*super().meters_fed(), *(device.meter for device in self.devices))
