"""An asyncio KMP master over a Link: requests with echo skipping, register polling, meter clock.

The decoding is the sans-IO codec's (modules.codecs.kmp.commands); this module only writes requests,
collects the reply bytes under a timeout and schedules the register groups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from gateway.adapter import ModuleContext
from gateway.errors import ConnectionLost
from gateway.model import Sample, utc_now
from gateway.transport import Link
from modules.codecs.errors import FrameError
from modules.codecs.kmp import commands as kmp
from modules.codecs.kmp.frame import START_TO_METER, FrameSplitter
from modules.codecs.kmp.registers import CLOCK, DATE, chunked
from modules.kmp.readings import readings as kmp_readings
from modules.sessions import LinkConfig

__all__ = ["ClockWatch", "KmpMaster", "poll"]

_LOGGER = logging.getLogger(__name__)

# KMP sets no reply time; PyKMP waits 2.0 s (client.py), golles 1.0 s at 1200 baud. Request
# and a full 8-register reply are under 120 bytes: 1.1 s at 1200 8N2, 0.14 s at 9600.
REPLY_TIMEOUT_S = 2.0
# Attempts per request before the link counts as lost: a request or reply garbled by ambient
# light on the IR head is common, three in a row means nobody is there.
REQUEST_ATTEMPTS = 3
# The meter clock resolves 1 s (register 1002 hhmmss): a smaller change of offset is that
# rounding, not the clock moving, and must not move sample times back and forth.
CLOCK_RESOLUTION_S = 2.0


_ANSWERS: dict[type, type] = {
    kmp.GetRegisterRequest: kmp.GetRegisterResponse,
    kmp.GetSerialNoRequest: kmp.GetSerialNoResponse,
    kmp.GetTypeRequest: kmp.GetTypeResponse,
    kmp.SetClockRequest: kmp.Ack,
}


class KmpMaster:
    """Sends KMP requests and returns the meter's checked replies."""

    def __init__(
        self,
        link: Link,
        *,
        address: int,
        on_bad_frame: Callable[[FrameError, bytes], None] | None = None,
    ) -> None:
        self._link = link
        self._address = address
        self._on_bad_frame = on_bad_frame

    async def request(self, message: kmp.Message) -> kmp.Message:
        """One request and its reply; retried, then ConnectionLost when the meter stays silent."""
        raw = kmp.encode(message, address=self._address)
        name = type(message).__name__.removesuffix("Request")
        problem = "no reply"
        for _ in range(REQUEST_ATTEMPTS):
            # A late reply to an earlier attempt must not pass for the answer to this one.
            self._link.discard_input()
            try:
                async with asyncio.timeout(REPLY_TIMEOUT_S):
                    await self._link.write(raw)
                    reply = await self._reply()
            except TimeoutError:
                problem = f"no reply within {REPLY_TIMEOUT_S} s"
                continue
            try:
                answer = kmp.decode(reply)
                self._check(message, answer)
            except FrameError as err:
                problem = str(err)
                if self._on_bad_frame is not None:
                    self._on_bad_frame(err, reply)
                continue
            return answer
        raise ConnectionLost(
            f"{self._link.url}: KMP {name} failed {REQUEST_ATTEMPTS} times ({problem})"
        )

    async def _reply(self) -> bytes:
        """The first frame from the meter; our own request echoed by the IR head is skipped."""
        splitter = FrameSplitter()
        while True:
            for frame in splitter.feed(await self._link.read()):
                if frame[0] != START_TO_METER:
                    return frame

    def _check(self, request: kmp.Message, answer: kmp.Message) -> None:
        expected = _ANSWERS.get(type(request))
        if isinstance(request, kmp.GetRegisterRequest) and isinstance(
            answer, kmp.GetRegisterResponse
        ):
            # A late reply to an earlier request (a slow TCP path) carries other registers.
            if not {value.register for value in answer.values} <= set(request.registers):
                raise FrameError(
                    "reply carries registers that were not asked for",
                    offset=0,
                    code="unexpected_reply",
                )
            return
        if expected is not None and isinstance(answer, expected):
            return
        if (
            expected is None
            and isinstance(answer, kmp.OtherMessage)
            and not answer.to_meter
            and not isinstance(request, kmp.Ack)
            and answer.cid == request.cid
        ):
            return
        raise FrameError(
            f"reply {type(answer).__name__} does not answer {type(request).__name__}",
            offset=0,
            code="unexpected_reply",
        )

    async def registers(self, ids: Sequence[int]) -> kmp.GetRegisterResponse:
        """The registers the meter knows among ``ids`` (8 per request), matched by id."""
        values: list[kmp.RegisterValue] = []
        for chunk in chunked(ids):
            answer = await self.request(kmp.GetRegisterRequest(chunk))
            assert isinstance(answer, kmp.GetRegisterResponse)
            values += answer.values
        return kmp.GetRegisterResponse(tuple(values))

    async def serial_number(self) -> int:
        """The meter's serial number (GetSerialNo)."""
        answer = await self.request(kmp.GetSerialNoRequest())
        assert isinstance(answer, kmp.GetSerialNoResponse)
        return answer.serial


class ClockWatch(msgspec.Struct):
    """The meter clock's offset from ours, learned from timed reads of registers 1002/1003."""

    zone: ZoneInfo
    threshold_s: float
    offset: timedelta | None = None
    reported_s: float | None = None

    def learn(self, local: datetime, sent: datetime, received: datetime) -> float:
        """Take a clock read (meter local time) made between ``sent`` and ``received``."""
        meter_utc = local.replace(tzinfo=self.zone).astimezone(UTC)
        offset = meter_utc - (sent + (received - sent) / 2)
        if self.offset is None or abs((offset - self.offset).total_seconds()) > CLOCK_RESOLUTION_S:
            self.offset = offset
        return offset.total_seconds()

    def drift_to_report(self, drift_s: float) -> bool:
        """True once per excursion beyond the threshold, and again when it grows by another."""
        if abs(drift_s) <= self.threshold_s:
            self.reported_s = None
            return False
        if self.reported_s is not None and abs(drift_s - self.reported_s) <= self.threshold_s:
            return False
        self.reported_s = drift_s
        return True

    def meter_now(self) -> datetime:
        """Our clock moved to the meter's."""
        now = utc_now()
        return now + self.offset if self.offset is not None else now


async def poll(link: Link, config: LinkConfig, ctx: ModuleContext) -> None:
    """Read the configured register groups, each at its interval, until cancelled."""
    options = config.kmp
    master = KmpMaster(link, address=options.address, on_bad_frame=ctx.frame_failed)
    plan = options.plan(config.interval_s)
    clock = ClockWatch(ctx.settings.zone, options.clock_drift_threshold_s)
    loop = asyncio.get_running_loop()
    due = [loop.time()] * len(plan)
    clock_due: float | None = loop.time() if options.clock_interval_s > 0 else None
    last_at: datetime | None = None
    while True:
        now = loop.time()
        if clock_due is not None and clock_due <= now:
            if await _read_clock(master, clock, ctx):
                clock_due = now + options.clock_interval_s
            else:
                clock_due = None  # a meter without a clock: stamp with our time
        for index, (_name, ids, interval_s) in enumerate(plan):
            if due[index] > now:
                continue
            response = await master.registers(ids)
            at = clock.meter_now() if options.meter_time else utc_now()
            # Samples never step back within a run: the engine reads that as a clock change.
            at = max(at, last_at) if last_at is not None else at
            readings = tuple(r for r in kmp_readings(response) if r.obis not in ("clock", "date"))
            if readings:
                ctx.submit(Sample(config.meter, config.name, at, readings))
                last_at = at
            else:
                ctx.frame_ok()
            # Missed slots are skipped rather than caught up in a burst.
            due[index] = max(due[index] + interval_s, now)
        wake = min(due + ([clock_due] if clock_due is not None else []))
        await asyncio.sleep(max(0.0, wake - loop.time()))


async def _read_clock(master: KmpMaster, clock: ClockWatch, ctx: ModuleContext) -> bool:
    sent = utc_now()
    response = await master.registers((CLOCK, DATE))
    received = utc_now()
    local = kmp.meter_time(response)
    if local is None:
        _LOGGER.info("%s: the meter reports no clock (registers 1002/1003)", ctx.name)
        return False
    drift_s = clock.learn(local, sent, received)
    _LOGGER.debug("%s: meter clock %s, %+.1f s from ours", ctx.name, local.isoformat(), drift_s)
    if clock.drift_to_report(drift_s):
        ctx.event(
            "clock_drift",
            f"meter clock is {drift_s:+.0f} s off the gateway clock",
            drift_s=round(drift_s, 1),
            meter_time=local.isoformat(),
            threshold_s=clock.threshold_s,
        )
    return True
