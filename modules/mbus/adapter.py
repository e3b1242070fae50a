"""``type = "mbus"``: a wired M-Bus master polling the meters on one bus.

One bus is one half-duplex line, so the meters are polled one after the other, each at its
own interval. A meter that stops answering does not stop the others: it gets a
``communication_lost`` event (once) and a ``communication_restored`` one when it answers
again; only a dead port, or a bus where no meter answered for ``reconnect_after_s``, ends
``run()`` so the supervisor reopens it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ClassVar

import msgspec

from gateway.adapter import ModuleContext
from gateway.engine.commands import CommandSpec
from gateway.errors import ConnectionLost, TransportError
from gateway.model import utc_now
from gateway.transport import SerialSettings, open_link
from modules.codecs.errors import FrameError
from modules.codecs.mbus.frames import BROADCAST_ADDRESS, NETWORK_LAYER_ADDRESS, SecondaryAddress
from modules.codecs.records import Decoded
from modules.mbus.config import MbusConfig, MbusDevice
from modules.mbus.master import Collision, Master, NoAnswer, Readout
from modules.mbus.readings import to_sample

__all__ = ["MbusAdapter", "MbusConfig"]

_LOGGER = logging.getLogger(__name__)

# The first polls are spread over this long so a bus of many meters does not start in a burst.
FIRST_POLL_SPREAD_S = 1.0


class _Poll(msgspec.Struct):
    """What the adapter remembers about one device between polls."""

    device: MbusDevice
    due: float
    lost: bool
    needs_reset: bool = True  # SND_NKE before the next readout (start, after a failure)
    fcb: bool = True


class MbusAdapter:
    """Reads the meters on one wired M-Bus into their gateway meters."""

    Config = MbusConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: MbusConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Open the bus, reset it, then poll each device at its interval until cancelled."""
        devices = self.config.devices
        start = asyncio.get_running_loop().time()
        spread = FIRST_POLL_SPREAD_S / len(devices)
        polls = [
            _Poll(device, start + index * spread, ctx.load_state(_lost_key(device)) == b"1")
            for index, device in enumerate(devices)
        ]
        try:
            await self._serve(ctx, polls)
        except TransportError as err:
            # Without the port no meter can answer: each meter's log says so (once).
            for poll in polls:
                self._lost(ctx, poll, err)
            raise

    async def _serve(self, ctx: ModuleContext, polls: list[_Poll]) -> None:
        config = self.config
        line = SerialSettings(baudrate=config.baudrate, bytesize=8, parity="E", stopbits=1)
        loop = asyncio.get_running_loop()
        async with open_link(config.port, line) as link:
            master = Master(
                link,
                baudrate=config.baudrate,
                echo=config.echo,
                latency_s=config.latency_s,
                retries=config.retries,
                on_error=ctx.frame_failed,
            )
            _LOGGER.info(
                "%s: M-Bus on %s at %d Bd, %d device(s)",
                ctx.name,
                config.port,
                config.baudrate,
                len(config.devices),
            )
            await master.reset(BROADCAST_ADDRESS)
            last_answer = loop.time()
            while True:
                poll = min(polls, key=lambda p: p.due)
                await asyncio.sleep(max(poll.due - loop.time(), 0.0))
                answered = await self._poll(ctx, master, poll)
                now = loop.time()
                poll.due = max(poll.due + poll.device.poll_interval_s, now)
                if answered:
                    last_answer = now
                elif config.reconnect_after_s and now - last_answer > config.reconnect_after_s:
                    raise ConnectionLost(
                        f"{config.port}: no meter answered for {now - last_answer:.0f} s"
                    )

    async def _poll(self, ctx: ModuleContext, master: Master, poll: _Poll) -> bool:
        """Read one device and submit its sample; False if it did not answer usefully."""
        device = poll.device
        try:
            readout = await self._read(master, poll)
        except (NoAnswer, FrameError) as err:  # garbled frames were counted as they came
            poll.needs_reset = True
            self._lost(ctx, poll, err)
            return False
        if not readout.complete:
            _LOGGER.warning(
                "%s: %s still had records after %d telegrams (max_telegrams)",
                ctx.name,
                device.label,
                len(readout.telegrams),
            )
        sample = to_sample(
            device.meter,
            ctx.name,
            readout.telegrams,
            received_at=utc_now(),
            zone=ctx.settings.zone,
            raw=b"".join(readout.frames),
        )
        ctx.submit(sample)
        self._restored(ctx, poll)
        return True

    async def _read(self, master: Master, poll: _Poll) -> Readout:
        device = poll.device
        pattern = device.secondary
        what = f"REQ_UD2 to {device.label}"
        if pattern is None:
            address = device.primary_address
            assert address is not None  # the config allows exactly one of the two
            if poll.needs_reset:
                await master.reset(address)
                poll.fcb = True
        else:
            address = NETWORK_LAYER_ADDRESS
            if poll.needs_reset:
                await self._select(master, pattern, device)
                await master.reset(NETWORK_LAYER_ADDRESS)  # also ends the selection
                poll.fcb = True
            await self._select(master, pattern, device)
        readout = await master.read(
            address,
            fcb=poll.fcb,
            max_telegrams=self.config.max_telegrams,
            what=what,
            check=None if pattern is None else _identity_check(pattern),
        )
        poll.fcb = readout.fcb
        poll.needs_reset = not readout.complete
        return readout

    async def _select(self, master: Master, pattern: SecondaryAddress, device: MbusDevice) -> None:
        result = await master.select(pattern, attempts=self.config.retries + 1)
        if result == "none":
            raise NoAnswer(f"no meter acknowledges the selection of {pattern}")
        if result == "collision":
            raise Collision(
                f"several meters match {pattern}: give {device.meter} a more specific "
                "secondary_address (see `meter-gateway scan`)"
            )

    def _lost(self, ctx: ModuleContext, poll: _Poll, error: Exception) -> None:
        device = poll.device
        ctx.health.last_error = f"{device.meter} ({device.label}): {error}"
        if poll.lost:
            _LOGGER.debug("%s: %s still silent: %s", ctx.name, device.label, error)
            return
        poll.lost = True
        ctx.save_state(_lost_key(device), b"1")
        _LOGGER.warning("%s: meter %s (%s) lost: %s", ctx.name, device.meter, device.label, error)
        ctx.event(
            "communication_lost",
            f"M-Bus meter at {device.label} does not answer: {error}",
            meter=device.meter,
            address=device.label,
        )

    def _restored(self, ctx: ModuleContext, poll: _Poll) -> None:
        if not poll.lost:
            return
        device = poll.device
        poll.lost = False
        ctx.save_state(_lost_key(device), b"0")
        _LOGGER.info("%s: meter %s (%s) answers again", ctx.name, device.meter, device.label)
        ctx.event(
            "communication_restored",
            f"M-Bus meter at {device.label} answers again",
            meter=device.meter,
            address=device.label,
        )


def _lost_key(device: MbusDevice) -> str:
    return f"lost:{device.meter}"


def _identity_check(pattern: SecondaryAddress) -> Callable[[Decoded], None]:
    """A selected meter must be the one asked for (a stale selection answers otherwise)."""

    def check(decoded: Decoded) -> None:
        text = decoded.meter.get("secondary_address")
        if isinstance(text, str) and not pattern.matches(SecondaryAddress.parse(text)):
            raise FrameError(f"meter {text} answered for the selection of {pattern}", offset=7)

    return check
