"""``meter-gateway simulate zwave``: a Z-Wave stick and the controller on the far side of its radio.

The gateway's zwave module sees a USB stick with Serial API end-node firmware: it answers
soft reset (with SERIAL_API_STARTED), init data, version and the network ids, keeps the node
information the host gives it, and carries ZW_SendData frames "over the air" with their
callbacks. Behind it sits a controller (node 1) that includes the node when the host starts
learn mode (and excludes it when asked for exclusion), interviews it like zwave-js does
(Manufacturer Specific, Version, Z-Wave Plus Info, the lifeline, Multi Channel end points,
Meter Supported Get and a Meter Get for each scale and rate type) and records every Meter
Report, solicited or not. With ``security`` it first includes the node securely (S2
Authenticated with the node's PIN, S2 Unauthenticated, or S0; ``including.py``) and then
talks to it only encrypted, decrypting what it receives. Tests use the class directly;
faults (lost ACKs, NAK, CAN) are counters to set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gateway.errors import ConnectionLost
from gateway.transport import Link, open_pty, write_slowly
from modules.codecs.errors import FrameError
from modules.codecs.zwave.api.messages import (
    APPLICATION_NODEINFO_LISTENING,
    GENERIC_TYPE_METER,
    SPECIFIC_TYPE_SIMPLE_METER,
    LearnMode,
    LearnStatus,
    SerialMessage,
    TxStatus,
)
from modules.codecs.zwave.api.node import (
    ApplNodeInformationRequest,
    GetCapabilitiesRequest,
    GetCapabilitiesResponse,
    GetInitDataRequest,
    GetInitDataResponse,
    GetVersionRequest,
    GetVersionResponse,
    MemoryGetIdRequest,
    MemoryGetIdResponse,
    SerialApiStarted,
    SetLearnModeCallback,
    SetLearnModeRequest,
    SetLearnModeResponse,
    SoftResetRequest,
)
from modules.codecs.zwave.api.transport import (
    ApplicationCommand,
    SendDataCallback,
    SendDataRequest,
    SendDataResponse,
    SendNodeInformationCallback,
    SendNodeInformationRequest,
    SendNodeInformationResponse,
)
from modules.codecs.zwave.cc.association import (
    AssociationGet,
    AssociationGroupingsGet,
    AssociationGroupingsReport,
    AssociationReport,
    AssociationSet,
    ZwavePlusInfoGet,
    ZwavePlusInfoReport,
)
from modules.codecs.zwave.cc.base import CcCommand, CommandClassId, LibraryType
from modules.codecs.zwave.cc.multichannel import (
    MultiChannelCapabilityGet,
    MultiChannelCapabilityReport,
    MultiChannelCmdEncap,
    MultiChannelEndPointGet,
    MultiChannelEndPointReport,
)
from modules.codecs.zwave.cc.version import (
    ManufacturerSpecificGet,
    ManufacturerSpecificReport,
    VersionCommandClassGet,
    VersionCommandClassReport,
    VersionGet,
    VersionReport,
)
from modules.codecs.zwave.dispatch import parse_command, parse_message
from modules.codecs.zwave.meter import (
    MeterGet,
    MeterReport,
    MeterSupportedGet,
    MeterSupportedReport,
    report_record,
)
from modules.codecs.zwave.security.s2 import S2CommandsSupportedGet, S2CommandsSupportedReport
from modules.codecs.zwave.serial import (
    ACK_TIMEOUT_S,
    MAX_RETRANSMISSIONS,
    BadFrame,
    ControlByte,
    DataFrame,
    FrameExtractor,
    retransmit_delay_s,
)
from modules.zwave.including import Includer, InclusionMode
from modules.zwave.security import Frame

__all__ = ["ControllerEmulator", "Faults", "ReceivedReport", "StickMemory", "main"]

_LOGGER = logging.getLogger(__name__)

CONTROLLER_NODE_ID = 1
DEFAULT_HOME_ID = 0xC0FFEE01
RESTART_S = 0.05  # how long the emulated module takes to come back from a soft reset
LEARN_S = 0.05  # how long the emulated inclusion or exclusion takes over the air
AIR_S = 0.005  # one frame's flight to the controller and back
SECURE_INCLUSION_TIMEOUT_S = 20.0  # zwave-js gives each key exchange step 10 s at most
ASK_TIMEOUT_S = 5.0  # the controller's wait for a report (zwave-js "report" timeout is 10 s)

_C = TypeVar("_C", bound=CcCommand)
# (asking node, end point, answer type, does this command answer the question, its future)
_Waiter = tuple[int, int, type[CcCommand], Callable[[CcCommand], bool], asyncio.Future[CcCommand]]


def _answers(question: CcCommand) -> Callable[[CcCommand], bool]:
    """Which received commands answer ``question`` (zwave-js testResponseForMeterGet)."""
    if isinstance(question, MeterGet) and question.scale is not None:
        scale, rate = question.scale, question.rate_type

        def same(answer: CcCommand) -> bool:
            if not isinstance(answer, MeterReport):
                return False
            return answer.scale == scale and (not rate or answer.rate_type == rate)

        return same
    return lambda _answer: True


@dataclasses.dataclass
class StickMemory:
    """What the stick keeps in its non-volatile memory, across unplugging."""

    home_id: int = DEFAULT_HOME_ID
    node_id: int = 0  # 0: not in a network


@dataclasses.dataclass
class Faults:
    """Misbehaviour to inject, each a count of the host's next data frames it applies to."""

    lose: int = 0  # frames swallowed without an ACK (the frame or its ACK lost on the line)
    nak: int = 0  # frames answered with NAK (a checksum error on the way)
    can: int = 0  # frames answered with CAN (the stick was sending at the same moment)
    corrupt: int = 0  # frames to the host whose first copy has a bad checksum


@dataclasses.dataclass(frozen=True, slots=True)
class ReceivedReport:
    """A Meter Report the controller received."""

    node_id: int
    end_point: int
    report: MeterReport
    solicited: bool
    at: float  # event loop time of arrival
    security: str = "none"  # the class it arrived with (decrypted), e.g. "s2_authenticated"

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON-ready line."""
        record = report_record(self.report, end_point=self.end_point)
        return {
            "node": self.node_id,
            "end_point": self.end_point,
            "kind": "get" if self.solicited else "unsolicited",
            "name": record.name,
            "obis": record.obis,
            "value": str(self.report.value),
            "unit": record.unit,
            "rate_type": self.report.rate_type,
            "scale": self.report.scale,
            "security": self.security,
        }


class ControllerEmulator:
    """The stick and the controller; ``serve(link)`` runs them on the device side of a pty."""

    def __init__(
        self,
        memory: StickMemory | None = None,
        *,
        assign_node_id: int = 2,
        end_node_firmware: bool = True,
        answer_learn_mode: bool = True,
        interview_on_start: bool = False,
        byte_delay_s: float = 0.0,
        on_report: Callable[[ReceivedReport], None] | None = None,
        security: InclusionMode | None = None,
        pin: str | None = None,
        pin_delay_s: float = 0.0,
    ) -> None:
        self.memory = memory or StickMemory()
        self.faults = Faults()
        self.assign_node_id = assign_node_id
        self.end_node_firmware = end_node_firmware
        self.answer_learn_mode = answer_learn_mode
        self.interview_on_start = interview_on_start
        self.byte_delay_s = byte_delay_s
        self.on_report = on_report
        self.security = security  # how the node is included: None is without security
        self.pin = pin  # the node's DSK PIN, typed for S2 Authenticated
        self.pin_delay_s = pin_delay_s  # how long the "user" takes to type it
        self._pin_typed = False
        self.includer: Includer | None = None
        self.end_point_secure: dict[int, tuple[int, ...]] = {}  # end point -> secure classes
        self.secured = asyncio.Event()  # the key exchange ended (see includer.done / failure)
        self.reports: list[ReceivedReport] = []
        self.supported: dict[int, MeterSupportedReport] = {}
        self.node_info: ApplNodeInformationRequest | None = None
        self.host_messages: list[SerialMessage] = []
        self.repeated_frames = 0  # data frames the host sent twice in a row (retransmissions)
        self.lost_frames: list[bytes] = []  # what the ``lose`` fault swallowed
        self.soft_resets = 0
        self.interviewed = asyncio.Event()
        self.included = asyncio.Event()
        self.excluded = asyncio.Event()
        self.started = asyncio.Event()  # the host announced its node information
        self._link: Link | None = None
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._ack: asyncio.Future[ControlByte] | None = None
        self._waiters: list[_Waiter] = []
        self._group: asyncio.TaskGroup | None = None
        self._last_frame = b""
        self._line = asyncio.Lock()  # one writer on the line: an ACK never splits a frame

    # the controller ----------------------------------------------------------------------------

    async def ask(
        self,
        command: CcCommand,
        expect: type[_C],
        *,
        node_id: int = CONTROLLER_NODE_ID,
        end_point: int = 0,
        rx_status: int = 0,
        timeout_s: float = ASK_TIMEOUT_S,
        plain: bool = False,
    ) -> _C:
        """Send a command from ``node_id`` to the gateway's node and wait for its answer.

        A Meter Get is answered only by a report of the scale and rate type it asked for (as
        zwave-js matches them): an unsolicited report arriving meanwhile is not the answer.
        """
        waiter: asyncio.Future[CcCommand] = asyncio.get_running_loop().create_future()
        self._waiters.append((node_id, end_point, expect, _answers(command), waiter))
        try:
            self.send_command(
                command, node_id=node_id, end_point=end_point, rx_status=rx_status, plain=plain
            )
            async with asyncio.timeout(timeout_s):
                answer = await waiter
        finally:
            self._waiters = [entry for entry in self._waiters if entry[4] is not waiter]
        assert isinstance(answer, expect)
        return answer

    def send_command(
        self,
        command: CcCommand,
        *,
        node_id: int = CONTROLLER_NODE_ID,
        end_point: int = 0,
        rx_status: int = 0,
        plain: bool = False,
    ) -> None:
        """A command "received over the air" from ``node_id``, handed to the host.

        Once the node is securely included the controller's commands go encrypted, unless
        ``plain`` (what an attacker without the keys could send).
        """
        payload = command.encode()
        if end_point:
            payload = MultiChannelCmdEncap(0, end_point, payload).encode()
        includer = self.includer
        if includer is not None and includer.done and node_id == CONTROLLER_NODE_ID and not plain:
            now = asyncio.get_running_loop().time()
            frames = includer.link.send(includer.node_id, payload, includer.level, now)
            self._deliver(frames, rx_status)
            return
        self._send(ApplicationCommand(rx_status, node_id, payload, rssi=-52))

    def _deliver(self, frames: list[Frame], rx_status: int = 0) -> None:
        for frame in frames:
            self._send(ApplicationCommand(rx_status, CONTROLLER_NODE_ID, frame.payload, rssi=-52))

    async def interview(self) -> None:
        """What a controller asks a new meter node, ending with every meter value."""
        await self.ask(ManufacturerSpecificGet(), ManufacturerSpecificReport)
        await self.ask(VersionGet(), VersionReport)
        supported = self.node_info.supported if self.node_info else ()
        if self.includer is not None and self.includer.done:
            # A secure node lists its secure classes in Commands Supported, not in its NIF.
            supported = tuple(dict.fromkeys((*supported, *self.includer.secure_classes)))
        for cc in supported:
            await self.ask(VersionCommandClassGet(cc), VersionCommandClassReport)
        await self.ask(ZwavePlusInfoGet(), ZwavePlusInfoReport)
        await self.ask(AssociationGroupingsGet(), AssociationGroupingsReport)
        self.send_command(AssociationSet(1, (CONTROLLER_NODE_ID,)))
        await self.ask(AssociationGet(1), AssociationReport)
        end_points = [0] if CommandClassId.METER in supported else []
        if CommandClassId.MULTI_CHANNEL in supported:
            count = await self.ask(MultiChannelEndPointGet(), MultiChannelEndPointReport)
            for end_point in range(1, count.end_points + 1):
                await self.ask(MultiChannelCapabilityGet(end_point), MultiChannelCapabilityReport)
                if self.includer is not None and self.includer.level.is_s2:
                    # As Z-Wave JS: what each end point of a secure node supports securely.
                    secure = await self.ask(
                        S2CommandsSupportedGet(), S2CommandsSupportedReport, end_point=end_point
                    )
                    self.end_point_secure[end_point] = secure.supported
                end_points.append(end_point)
        for end_point in end_points:
            await self.read_meter(end_point)
        self.interviewed.set()

    async def read_meter(self, end_point: int = 0) -> list[MeterReport]:
        """Meter Supported Get, then a Get per rate type and scale (as zwave-js refreshes)."""
        supported = await self.ask(MeterSupportedGet(), MeterSupportedReport, end_point=end_point)
        self.supported[end_point] = supported
        out = []
        for rate in supported.rate_types or (0,):
            for scale in supported.scales:
                get = MeterGet(scale, rate, scale2_present=True)
                out.append(await self.ask(get, MeterReport, end_point=end_point))
        return out

    def unsolicited(self) -> list[ReceivedReport]:
        """The reports nobody asked for (the lifeline's)."""
        return [report for report in self.reports if not report.solicited]

    # the stick ---------------------------------------------------------------------------------

    async def serve(self, link: Link) -> None:
        """Be the stick on ``link`` until it closes."""
        self._link = link
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self._write_loop(link))
                await self._read_loop(link)
        except* ConnectionLost:
            pass  # the host side went away; a test may plug a new one in
        finally:
            self._group = None
            self._link = None

    async def _read_loop(self, link: Link) -> None:
        extractor = FrameExtractor()
        while True:
            for event in extractor.feed(await link.read()):
                if isinstance(event, ControlByte):
                    if self._ack is not None and not self._ack.done():
                        self._ack.set_result(event)
                elif isinstance(event, DataFrame):
                    await self._on_frame(link, event)
                elif isinstance(event, BadFrame):
                    await self._put(link, bytes((ControlByte.NAK,)))

    async def _on_frame(self, link: Link, frame: DataFrame) -> None:
        faults = self.faults
        if faults.lose:
            faults.lose -= 1
            self.lost_frames.append(frame.encode())
            return
        for name, byte in (("nak", ControlByte.NAK), ("can", ControlByte.CAN)):
            if getattr(faults, name):
                setattr(faults, name, getattr(faults, name) - 1)
                await self._put(link, bytes((byte,)))
                return
        await self._put(link, bytes((ControlByte.ACK,)))
        raw = frame.encode()
        if raw == self._last_frame:
            self.repeated_frames += 1
        self._last_frame = raw
        try:
            message = parse_message(frame, from_host=True)
        except FrameError as err:
            _LOGGER.warning("emulator: cannot parse %s: %s", raw.hex(), err)
            return
        self.host_messages.append(message)
        self._handle(message)

    def _handle(self, message: SerialMessage) -> None:
        if isinstance(message, SoftResetRequest):
            self.soft_resets += 1
            self._later(RESTART_S, self._restarted)
        elif isinstance(message, GetInitDataRequest):
            capabilities = 0x01 if self.end_node_firmware else 0x08
            self._send(GetInitDataResponse(9, capabilities, (), 0x07, 0x00))
        elif isinstance(message, GetVersionRequest):
            self._send(GetVersionResponse("Z-Wave 7.18", LibraryType.ENHANCED_END_NODE))
        elif isinstance(message, GetCapabilitiesRequest):
            self._send(GetCapabilitiesResponse(7, 18, 0x0000, 0x0004, 0x0004, (2, 4, 8, 19)))
        elif isinstance(message, MemoryGetIdRequest):
            self._send(MemoryGetIdResponse(self.memory.home_id, self.memory.node_id))
        elif isinstance(message, ApplNodeInformationRequest):
            self.node_info = message
            if not self.started.is_set():
                self.started.set()
                if self.interview_on_start and self.memory.node_id:
                    self._later(AIR_S, self.interview)
        elif isinstance(message, SetLearnModeRequest):
            self._send(SetLearnModeResponse(True))
            if message.mode != LearnMode.DISABLE and self.answer_learn_mode:
                self._later(LEARN_S, functools.partial(self._learn, message))
        elif isinstance(message, SendDataRequest):
            self._send(SendDataResponse(True))
            self._later(AIR_S, functools.partial(self._air, message))
        elif isinstance(message, SendNodeInformationRequest):
            self._send(SendNodeInformationResponse(True))
            self._send(SendNodeInformationCallback(message.callback_id, TxStatus.OK))
        else:
            _LOGGER.debug("emulator: no answer to %s", type(message).__name__)

    async def _restarted(self) -> None:
        info = self.node_info
        self._send(
            SerialApiStarted(
                0x00,  # reset by the host
                False,
                APPLICATION_NODEINFO_LISTENING,
                info.generic_type if info else GENERIC_TYPE_METER,
                info.specific_type if info else SPECIFIC_TYPE_SIMPLE_METER,
                info.supported if info else (),
            )
        )

    async def _learn(self, request: SetLearnModeRequest) -> None:
        callback = request.callback_id
        if self.memory.node_id:
            self.memory.node_id = 0
            self._send(SetLearnModeCallback(callback, LearnStatus.ASSIGN_COMPLETE, 0))
            self.excluded.set()
            return
        if request.mode == LearnMode.NWE:
            return  # nothing to leave: the controller would not answer
        node_id = self.assign_node_id
        self.memory.node_id = node_id
        self._send(SetLearnModeCallback(callback, LearnStatus.ASSIGN_NODEID_DONE, node_id))
        self._send(SetLearnModeCallback(callback, LearnStatus.ASSIGN_COMPLETE, node_id))
        self.included.set()
        await asyncio.sleep(LEARN_S)  # the host reads its new ids before the interview starts
        if self.security is not None:
            await self._include_securely(node_id)
        await self.interview()

    async def _include_securely(self, node_id: int) -> None:
        """S2 bootstrapping or S0 inclusion, as the including controller."""
        self.includer = Includer(
            CONTROLLER_NODE_ID,
            node_id,
            self.memory.home_id,
            self.security or "s0",
            pin=None if self.pin_delay_s else self.pin,
        )
        self._pin_typed = False
        self.secured.clear()
        self._deliver(self.includer.start(asyncio.get_running_loop().time()))
        async with asyncio.timeout(SECURE_INCLUSION_TIMEOUT_S):
            await self.secured.wait()
        if not self.includer.done:
            raise TimeoutError(f"secure inclusion failed: {self.includer.failure}")

    async def _air(self, request: SendDataRequest) -> None:
        """A frame from the gateway's node reaches its destination; the callback says so."""
        if request.callback_id:
            self._send(SendDataCallback(request.callback_id, TxStatus.OK))
        includer = self.includer
        if includer is None or request.node_id != CONTROLLER_NODE_ID:
            self._arrived(request.node_id, request.payload, "none")
            return
        now = asyncio.get_running_loop().time()
        try:
            step = includer.receive(includer.node_id, request.payload, now)
        except FrameError as err:
            _LOGGER.warning("emulator: node sent a bad frame %s: %s", request.payload.hex(), err)
            return
        self._deliver(step.frames)
        if includer.awaiting_pin and not self._pin_typed:
            self._pin_typed = True
            self._later(self.pin_delay_s, self._type_pin)
        if includer.done or includer.failure is not None:
            self.secured.set()
        for inbound in step.inbound:
            self._arrived(request.node_id, inbound.payload, inbound.level.label)

    async def _type_pin(self) -> None:
        if self.includer is not None:
            self.includer.enter_pin(self.pin or "00000")

    def _arrived(self, node_id: int, payload: bytes, security: str) -> None:
        """A command from the gateway's node reached ``node_id`` (decrypted)."""
        try:
            command = parse_command(payload)
            end_point = 0
            if isinstance(command, MultiChannelCmdEncap):
                end_point = command.source_end_point
                command = parse_command(command.payload)
        except FrameError as err:
            _LOGGER.warning("emulator: node sent a bad command %s: %s", payload.hex(), err)
            return
        waiter = next(
            (
                entry[4]
                for entry in self._waiters
                if entry[:3] == (node_id, end_point, type(command))
                and entry[3](command)
                and not entry[4].done()
            ),
            None,
        )
        solicited = waiter is not None
        if isinstance(command, MeterReport):
            now = asyncio.get_running_loop().time()
            received = ReceivedReport(node_id, end_point, command, solicited, now, security)
            self.reports.append(received)
            if self.on_report is not None:
                self.on_report(received)
        if waiter is not None:
            waiter.set_result(command)

    # frames out --------------------------------------------------------------------------------

    def _send(self, message: SerialMessage) -> None:
        self._outgoing.put_nowait(message.encode())

    def _later(self, delay_s: float, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay_s)
            with contextlib.suppress(TimeoutError):  # an interview the host stopped answering
                await work()

        if self._group is not None:
            self._group.create_task(run())

    async def _write_loop(self, link: Link) -> None:
        while True:
            frame = await self._outgoing.get()
            for attempt in range(MAX_RETRANSMISSIONS + 1):
                if attempt:
                    await asyncio.sleep(retransmit_delay_s(attempt))
                if await self._write_frame(link, frame) is ControlByte.ACK:
                    break
            else:
                _LOGGER.warning("emulator: host never acknowledged %s", frame.hex())

    async def _write_frame(self, link: Link, frame: bytes) -> ControlByte | None:
        waiter: asyncio.Future[ControlByte] = asyncio.get_running_loop().create_future()
        self._ack = waiter
        if self.faults.corrupt:
            self.faults.corrupt -= 1
            frame = frame[:-1] + bytes((frame[-1] ^ 0xFF,))
        try:
            await self._put(link, frame)
            async with asyncio.timeout(ACK_TIMEOUT_S):
                return await waiter
        except TimeoutError:
            return None
        finally:
            self._ack = None

    async def _put(self, link: Link, data: bytes) -> None:
        async with self._line:
            await write_slowly(link, data, self.byte_delay_s)


def _print_report(report: ReceivedReport) -> None:
    print(json.dumps(report.as_json(), default=str), flush=True)  # noqa: T201 - the CLI's output


async def _serve_forever(args: argparse.Namespace) -> None:
    memory = StickMemory(home_id=int(args.home_id, 16), node_id=args.node_id)
    emulator = ControllerEmulator(
        memory,
        assign_node_id=args.assign_node_id,
        interview_on_start=bool(args.node_id),
        byte_delay_s=args.byte_delay_s,
        on_report=_print_report,
        security=args.security,
        pin=args.pin,
    )
    while True:
        async with open_pty(args.pty) as (link, path):
            print(f"Z-Wave stick emulator on {path}", file=sys.stderr, flush=True)  # noqa: T201
            await emulator.serve(link)
        await asyncio.sleep(0.1)  # the gateway closed the port: be ready for its return


def main(argv: list[str]) -> int:
    """``meter-gateway simulate zwave --pty PATH``: a stick with a controller behind it."""
    parser = argparse.ArgumentParser(prog="meter-gateway simulate zwave", description=__doc__)
    parser.add_argument("--pty", default="./ttyZWAVE", help="symlink to the emulated stick")
    parser.add_argument("--home-id", default=f"{DEFAULT_HOME_ID:08x}", help="network id (hex)")
    parser.add_argument("--node-id", type=int, default=0, help="start included as this node")
    parser.add_argument("--assign-node-id", type=int, default=2, help="node id on inclusion")
    parser.add_argument("--byte-delay-s", type=float, default=0.0, help="send byte by byte")
    parser.add_argument(
        "--security",
        choices=("s2_authenticated", "s2_unauthenticated", "s0"),
        help="include the node securely (S2 Authenticated needs --pin)",
    )
    parser.add_argument("--pin", help="the node's DSK PIN (its log and keys file show it)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))
    return 0
