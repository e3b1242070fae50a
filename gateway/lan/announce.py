"""mDNS/DNS-SD announcement of the HTTP API as ``_meter-gateway._tcp.local.`` (and of the
compatibility outputs under the service types their clients browse for)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Mapping, Sequence

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, NonUniqueNameException
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

__all__ = ["SERVICE_TYPE", "ZeroconfAnnouncer", "interface_addresses", "txt_properties"]

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_meter-gateway._tcp.local."
# RFC 6763 6.1: a TXT string is at most 255 bytes; longer meter lists are cut at a comma.
_TXT_VALUE_MAX = 200
# Unregistering sends goodbye packets spaced by RFC 6762 10.1 timing; bound the whole close so
# shutdown stays well under systemd's TimeoutStopSec.
CLOSE_TIMEOUT_S = 3.0
REGISTER_TIMEOUT_S = 10.0


def interface_addresses(interfaces: Sequence[str]) -> list[str]:
    """IP addresses for configured interfaces, each given as an address or an interface name."""
    adapters = ifaddr.get_adapters()
    found: list[str] = []
    for wanted in interfaces:
        try:
            found.append(str(ipaddress.ip_address(wanted)))
            continue
        except ValueError:
            pass
        matches = [
            ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            for adapter in adapters
            if wanted in (adapter.nice_name, adapter.name)
            for ip in adapter.ips
        ]
        usable = [a for a in matches if not ipaddress.ip_address(a).is_link_local or ":" not in a]
        if not usable:
            _LOGGER.warning("zeroconf: no interface or address %r; skipped", wanted)
        found.extend(usable)
    return found


def _announced_addresses(bind: str, chosen: list[str]) -> list[str]:
    """What the A/AAAA records say: the bind address, or every chosen/own address for 0.0.0.0."""
    if bind not in ("", "0.0.0.0", "::"):
        return [bind]
    if chosen:
        return chosen
    own = [
        ip.ip
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback
    ]
    return own or ["127.0.0.1"]


class ZeroconfAnnouncer:
    """Registers the gateway's service on start; unregisters and closes on ``close``.

    ``services`` maps each service type to its TXT properties (default: the gateway's own
    type with ``properties``); all share the instance name, port and addresses.
    """

    def __init__(  # noqa: PLR0913 - keyword-only options
        self,
        *,
        instance: str,
        port: int,
        bind: str,
        interfaces: Sequence[str],
        properties: dict[str, str],
        services: Mapping[str, dict[str, str]] | None = None,
    ) -> None:
        self.instance = instance
        self.port = port
        self._bind = bind
        self._interfaces = tuple(interfaces)
        self._services = dict(services) if services else {SERVICE_TYPE: properties}
        self._zeroconf: AsyncZeroconf | None = None
        self._infos: list[AsyncServiceInfo] = []

    @property
    def name(self) -> str | None:
        """The registered service name (zeroconf may have renamed it on a collision)."""
        return self._infos[0].name if self._infos else None

    async def start(self) -> None:
        """Register the service on the chosen interfaces."""
        chosen = interface_addresses(self._interfaces)
        addresses = _announced_addresses(self._bind, chosen)
        ip_version = (
            IPVersion.All
            if any(":" in a for a in addresses) and any(":" not in a for a in addresses)
            else IPVersion.V6Only
            if all(":" in a for a in addresses)
            else IPVersion.V4Only
        )
        listen: list[str | int] | InterfaceChoice = list(chosen) if chosen else InterfaceChoice.All
        if self._bind not in ("", "0.0.0.0", "::") and not chosen:
            # Answer only where the API can be reached.
            listen = [self._bind]
        host = socket.gethostname().split(".")[0] or "meter-gateway"
        self._zeroconf = AsyncZeroconf(interfaces=listen, ip_version=ip_version)
        try:
            for service_type, properties in self._services.items():
                info = AsyncServiceInfo(
                    service_type,
                    f"{self.instance}.{service_type}",
                    parsed_addresses=addresses,
                    port=self.port,
                    properties=properties,
                    server=f"{host}.local.",
                )
                async with asyncio.timeout(REGISTER_TIMEOUT_S):
                    await (
                        await self._zeroconf.async_register_service(info, allow_name_change=True)
                    )
                self._infos.append(info)
        except (NonUniqueNameException, TimeoutError, OSError):
            await self.close()
            raise
        for info in self._infos:
            _LOGGER.info(
                "zeroconf: announced %s on %s port %d", info.name, ", ".join(addresses), self.port
            )

    async def close(self) -> None:
        """Send goodbyes and release the sockets; idempotent."""
        zeroconf, infos = self._zeroconf, self._infos
        self._zeroconf, self._infos = None, []
        if zeroconf is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                for info in infos:
                    await (await zeroconf.async_unregister_service(info))
        except (TimeoutError, OSError) as err:
            _LOGGER.warning("zeroconf: goodbye not sent: %s", str(err) or type(err).__name__)
        finally:
            await zeroconf.async_close()
        _LOGGER.info(
            "zeroconf: withdrew %s", ", ".join(i.name for i in infos) if infos else self.instance
        )


def txt_properties(version: str, api_path: str, meters: Sequence[str], name: str) -> dict[str, str]:
    """The TXT record: version, API path, gateway name and the meter ids."""
    joined = ""
    for meter in meters:
        candidate = f"{joined},{meter}" if joined else meter
        if len(candidate) > _TXT_VALUE_MAX:
            break
        joined = candidate
    return {"version": version, "api": api_path, "path": "/", "name": name, "meters": joined}
