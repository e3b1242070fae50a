"""DLMS GET polling as a link session (``protocol = "dlms"`` on rs485 and tcpip modules).

Once per association the scaler-unit of every register is read; then each cycle reads all
values with GET-with-list and submits them as one Sample stamped with the meter's clock. The
module is also a breaker actuator: name it in ``[meters.breaker] actuator`` and the meter's own
disconnector is switched with ACTION and its output_state reported back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal, Protocol
from urllib.parse import urlsplit

import msgspec

from gateway.adapter import Actuator, ModuleContext
from gateway.errors import CommandError, ConnectionLost
from gateway.model import Position, Sample, SwitchRequest, utc_now
from gateway.transport import Link
from modules.codecs.dlms.apdu import obis_bytes
from modules.codecs.dlms.axdr import OCTET_STRING, STRUCTURE, Data
from modules.codecs.dlms.lists import interpret
from modules.codecs.records import Decoded
from modules.dlms.config import DlmsOptions
from modules.dlms.readings import meter_time, to_readings
from modules.dlms.session import (
    DEFAULT_CLIENT_TITLE,
    ClientSettings,
    DlmsClient,
    data_access_result,
    open_client,
)
from modules.dlms.transports import Addresses

__all__ = ["KEEP_ASSOCIATION_S", "PollConfig", "client_settings", "poll"]

_LOGGER = logging.getLogger(__name__)

# Blue Book 4.3: the value attribute and, for registers, where the scaler-unit is.
_VALUE_ATTRIBUTE = {1: 2, 3: 2, 4: 2, 5: 2, 8: 2, 70: 3}
_SCALER_ATTRIBUTE = {3: 3, 4: 3, 5: 4}
# Meters end an idle HDLC connection after the inactivity time-out of their HDLC setup object
# (class 23, 120 s by default) and drop idle associations on TCP too: polls further apart than
# this release the association and open a new one each time instead of finding it gone.
KEEP_ASSOCIATION_S = 60.0
_GONE = frozenset({"object_undefined", "object_class_inconsistent", "object_unavailable"})


class PollConfig(Protocol):
    """What the link modules' config offers a session."""

    @property
    def name(self) -> str:
        """The module name."""
        ...

    @property
    def meter(self) -> str:
        """The meter fed."""
        ...

    @property
    def interval_s(self) -> float:
        """Seconds between polls."""
        ...

    @property
    def dlms(self) -> DlmsOptions:
        """The DLMS options."""
        ...


class _Item(msgspec.Struct):
    class_id: int
    obis: str
    scaler_unit: Data | None = None


async def poll(link: Link, config: PollConfig, ctx: ModuleContext) -> None:
    """Associate and read the configured objects every ``interval_s`` until the link fails;
    between polls, switch the meter's disconnector when the breaker asks (a SwitchRequest:
    the module is its meter's actuator when ``[meters.breaker] actuator`` names it)."""
    settings = client_settings(config.dlms, link.url)
    items: list[_Item] | None = None
    pending: SwitchRequest | None = None
    try:
        while True:
            async with open_client(link, settings) as client:
                if items is None:
                    items = await _plan(client, config.dlms, config.name)
                while True:
                    if pending is not None:
                        await _actuate(client, pending, config, ctx)
                    started = time.monotonic()
                    items = await _cycle(client, items, config, ctx)
                    if config.interval_s > KEEP_ASSOCIATION_S:
                        break  # released now, associated again for the next poll
                    pending = await _next_switch(ctx, config.interval_s, started)
            pending = await _next_switch(ctx, config.interval_s, started)
    except TimeoutError:
        raise ConnectionLost(f"{link.url}: the meter stopped answering") from None
    except CommandError as err:
        raise ConnectionLost(f"{link.url}: {err}") from err


async def _next_switch(ctx: Actuator, interval_s: float, started: float) -> SwitchRequest | None:
    """Wait out the poll interval; a switch the breaker asks for ends the wait early."""
    wait = max(0.0, interval_s - (time.monotonic() - started))
    try:
        async with asyncio.timeout(wait):
            return await ctx.switch_requests.get()
    except TimeoutError:
        return None


async def _actuate(
    client: DlmsClient, request: SwitchRequest, config: PollConfig, ctx: Actuator
) -> None:
    """Disconnect control (class 70, Blue Book 4.5.8): remote_disconnect or remote_reconnect,
    then report the supply's real position (output_state) to the breaker."""
    wanted = request.position
    try:
        if wanted == "open":
            await client.remote_disconnect()
        else:
            await client.remote_reconnect()
        connected = await client.output_state()
    except CommandError as err:
        # Refused by the meter (access rights, a local lock): the breaker must know at once.
        ctx.switch_failed(wanted, f"the meter refused {wanted}: {err}", code=err.code)
        return
    position: Position = "closed" if connected else "open"
    ctx.report_position(position)
    _LOGGER.info("%s: disconnector asked %s, meter reports %s", config.name, wanted, position)


def client_settings(options: DlmsOptions, url: str) -> ClientSettings:
    """How to reach the meter on ``url`` with these options (reads secret files now)."""
    key, auth_key = options.keys()
    return ClientSettings(
        transport=_transport(options.transport, url),
        addresses=Addresses(
            options.client_address, options.server_logical, options.server_physical
        ),
        password=options.secret(),
        key=key,
        auth_key=auth_key,
        system_title=options.client_title() or DEFAULT_CLIENT_TITLE,
        authentication=options.authentication,
    )


def _transport(choice: str, url: str) -> Literal["hdlc", "wrapper"]:
    if choice == "hdlc":
        return "hdlc"
    if choice == "wrapper":
        return "wrapper"
    return "wrapper" if urlsplit(url).scheme in ("tcp", "socket") else "hdlc"


async def _plan(client: DlmsClient, options: DlmsOptions, name: str) -> list[_Item]:
    """The objects to poll, with their scaler-units; objects the meter lacks are left out."""
    items = [_Item(class_id, obis) for class_id, obis in options.plan()]
    scaled = [item for item in items if item.class_id in _SCALER_ATTRIBUTE]
    results = await client.get_many(
        [(i.class_id, i.obis, _SCALER_ATTRIBUTE[i.class_id]) for i in scaled]
    )
    missing: set[str] = set()
    for item, result in zip(scaled, results, strict=True):
        if isinstance(result, Data):
            item.scaler_unit = result
        elif data_access_result(result) in _GONE:
            missing.add(item.obis)
    if missing:
        _LOGGER.info("%s: the meter has no %s", name, ", ".join(sorted(missing)))
    return [item for item in items if item.obis not in missing]


async def _cycle(
    client: DlmsClient, items: list[_Item], config: PollConfig, ctx: ModuleContext
) -> list[_Item]:
    results = await client.get_many(
        [(i.class_id, i.obis, _VALUE_ATTRIBUTE.get(i.class_id, 2)) for i in items]
    )
    structures: list[Data] = []
    kept: list[_Item] = []
    for item, result in zip(items, results, strict=True):
        if isinstance(result, int):
            reason = data_access_result(result)
            _LOGGER.debug("%s: %s: %s", config.name, item.obis, reason)
            if reason not in _GONE:
                kept.append(item)
            continue
        kept.append(item)
        parts = [Data(OCTET_STRING, obis_bytes(item.obis)), result]
        if item.scaler_unit is not None:
            parts.append(item.scaler_unit)
        structures.append(Data(STRUCTURE, tuple(parts)))
    listed = interpret(Data(STRUCTURE, tuple(structures)))
    decoded = Decoded("dlms", meter=listed.meter, records=listed.records)
    readings = to_readings(listed.records)
    if readings:
        at = meter_time(decoded, ctx.settings.zone) or utc_now()
        ctx.submit(Sample(config.meter, ctx.name, at, readings))
    else:
        ctx.frame_ok()
    return kept
