"""The zwave module over a real pty against the stick-and-controller emulator, in a Gateway."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import config
from gateway.app import Gateway
from gateway.engine import Register
from gateway.errors import CommandError
from gateway.model import Command, Reading, Sample, utc_now
from gateway.transport import open_pty
from modules.codecs.zwave.api.messages import LearnMode
from modules.codecs.zwave.api.node import SetLearnModeRequest
from modules.codecs.zwave.meter import MeterGet, MeterReport
from modules.zwave.emulator import ControllerEmulator
from tests.support.gateway import offline_text, running, until
from tests.support.processes import GATEWAY

AUTO = ("1-0:1.8.0", "1-0:2.8.0", "1-0:1.7.0", "1-0:2.7.0")
# The sim's registers as the node shows them: obis -> (end point, rate type, scale).
WITH_PHASES = (
    *AUTO,
    "1-0:3.8.0",  # kvarh: scale 7 + Scale 2
    "1-0:13.7.0",  # power factor
    "1-0:32.7.0",  # L1 voltage -> end point 1
    "1-0:31.7.0",  # L1 current -> end point 1
    "1-0:1.6.0",  # P+max: no Meter CC scale, left out
)
EXPECTED = {
    (0, 1, 0): "1-0:1.8.0",
    (0, 2, 0): "1-0:2.8.0",
    (0, 1, 2): "1-0:1.7.0",
    (0, 2, 2): "1-0:2.7.0",
    (0, 1, 8): "1-0:3.8.0",
    (0, 2, 8): "1-0:4.8.0",
    (0, 1, 6): "1-0:13.7.0",
    (0, 2, 6): "1-0:13.7.0",
    (1, 1, 4): "1-0:32.7.0",
    (1, 1, 5): "1-0:31.7.0",
}
RESOLUTION = {0: Decimal("0.001"), 2: Decimal("0.1"), 4: Decimal("0.1"), 5: Decimal("0.01")}


def write_config(
    tmp: Path, port: Path, *, sim: bool = True, display: tuple[str, ...] = AUTO, **zwave: object
) -> config.Settings:
    options = {
        "poll_interval_s": 0.1,
        "report_min_interval_s": 0.3,
        "report_interval_s": 0.0,
        **zwave,
    }
    lines = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in options.items())
    text = offline_text(
        tmp,
        '[[meters]]\nid = "main"\n[meters.display]\nauto = ['
        + ", ".join(f'"{code}"' for code in display)
        + "]\n"
        + (
            '[[modules]]\ntype = "sim"\nname = "sim1"\nmeter = "main"\ninterval_s = 0.5\n'
            if sim
            else ""
        )
        + f'[[modules]]\ntype = "zwave"\nname = "zw"\nmeter = "main"\nport = "{port}"\n'
        + lines,
    )
    path = tmp / "gateway.toml"
    path.write_text(text)
    return config.load(path)


@asynccontextmanager
async def plugged(path: Path, emulator: ControllerEmulator) -> AsyncIterator[ControllerEmulator]:
    async with open_pty(str(path)) as (link, _tty):
        task = asyncio.create_task(emulator.serve(link))
        try:
            yield emulator
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def include(gateway: Gateway, emulator: ControllerEmulator) -> None:
    await asyncio.wait_for(emulator.started.wait(), 10)
    result = await gateway.execute(Command("main", "learn_mode", "c1"))
    assert result == {"queued": True, "module": "zw"}
    await asyncio.wait_for(emulator.interviewed.wait(), 15)


def matches(report: MeterReport, register: Register | None) -> bool:
    if register is None:
        return False
    value = Decimal(str(register.value))
    step = RESOLUTION.get(report.scale, Decimal("0.001"))
    return abs(report.value - value) <= step


def snapshot(gateway: Gateway) -> Mapping[str, Register]:
    return dict(gateway.engines["main"].registers)


async def test_inclusion_interview_and_every_get_matches_the_engine(tmp_path: Path) -> None:
    port = tmp_path / "ttyZW"
    emulator = ControllerEmulator(byte_delay_s=0.0005)  # the stick talks one byte at a time
    settings = write_config(tmp_path, port, display=WITH_PHASES)
    async with plugged(port, emulator), running(settings) as gateway:
        await until(lambda: "1-0:13.7.0" in gateway.engines["main"].registers)
        await include(gateway, emulator)
        assert emulator.memory.node_id == 2
        assert emulator.node_info is not None
        assert emulator.node_info.supported[0] == 0x5E  # Z-Wave Plus Info first
        assert {0x32, 0x60, 0x85, 0x86, 0x72} <= set(emulator.node_info.supported)
        root, phase = emulator.supported[0], emulator.supported[1]
        assert set(root.scales) == {0, 2, 6, 8} and root.rate_types == (1, 2)
        assert set(phase.scales) == {4, 5} and phase.rate_types == (1,)
        asked = {
            (r.end_point, r.report.rate_type, r.report.scale)
            for r in emulator.reports
            if r.solicited
        }
        assert asked == set(EXPECTED)
        # Ask again with the registers read just before and after: the answer is one of them.
        for (end_point, rate, scale), code in EXPECTED.items():
            before = snapshot(gateway)
            report = await emulator.ask(
                MeterGet(scale, rate, True), MeterReport, end_point=end_point
            )
            after = snapshot(gateway)
            assert (report.rate_type, report.scale) == (rate, scale)
            assert matches(report, before.get(code)) or matches(report, after.get(code)), (
                code,
                report,
                before.get(code),
                after.get(code),
            )
        kinds = [event.kind for _, event in gateway.store.events("main")]
        assert "zwave_learn_mode" in kinds and "zwave_included" in kinds
        detail = next(h.detail for h in gateway.health.values() if h.type == "zwave")
        assert detail["node_id"] == emulator.assign_node_id, "the node's status is in health"


# -- without the sim: values change only when the test says so ------------------------------


def feed(gateway: Gateway, **values: str) -> None:
    """A sample of A+ / A- (kWh) and P+ / P- (W), by keyword, an hour of meter time later (the
    engine refuses energy that grows faster than the meter's maximum power)."""
    at = getattr(gateway, "_test_clock", utc_now()) + timedelta(hours=1)
    gateway._test_clock = at  # type: ignore[attr-defined]
    codes = {
        "a_plus": ("1-0:1.8.0", "kWh"),
        "a_minus": ("1-0:2.8.0", "kWh"),
        "p_plus": ("1-0:1.7.0", "W"),
        "p_minus": ("1-0:2.7.0", "W"),
    }
    readings = tuple(Reading(codes[k][0], Decimal(v), codes[k][1]) for k, v in values.items())
    gateway.submit("test", Sample("main", "test", at, readings))


def last_unsolicited(emulator: ControllerEmulator, rate: int, scale: int) -> MeterReport:
    found = [
        r.report
        for r in emulator.unsolicited()
        if (r.report.rate_type, r.report.scale) == (rate, scale)
    ]
    return found[-1] if found else MeterReport(1, scale, Decimal(-1), rate)  # none yet


@asynccontextmanager
async def included(
    tmp_path: Path, **zwave: object
) -> AsyncIterator[tuple[Gateway, ControllerEmulator]]:
    port = tmp_path / "ttyZW"
    emulator = ControllerEmulator()
    settings = write_config(tmp_path, port, sim=False, **zwave)  # type: ignore[arg-type]
    async with plugged(port, emulator), running(settings) as gateway:
        feed(gateway, a_plus="100.000", a_minus="5.000", p_plus="1000", p_minus="0")
        await include(gateway, emulator)
        # The new lifeline gets every value at once.
        await until(
            lambda: len({(r.report.rate_type, r.report.scale) for r in emulator.unsolicited()}) == 4
        )
        yield gateway, emulator


async def test_unsolicited_reports_follow_changes_beyond_the_threshold(tmp_path: Path) -> None:
    async with included(tmp_path) as (gateway, emulator):
        assert {r.node_id for r in emulator.unsolicited()} == {1}  # the lifeline
        assert last_unsolicited(emulator, 1, 2) == MeterReport.of(1, 2, Decimal(1000), rate_type=1)
        count = len(emulator.unsolicited())
        feed(gateway, a_plus="100.050", p_plus="1050")  # below 0.1 kWh and 10 %
        await asyncio.sleep(0.8)
        assert len(emulator.unsolicited()) == count
        feed(gateway, a_plus="100.200", p_plus="2000")
        await until(lambda: last_unsolicited(emulator, 1, 0).value == Decimal("100.2"))
        energy = last_unsolicited(emulator, 1, 0)
        assert energy.previous_value == Decimal(100) and (energy.delta_time_s or 0) >= 1
        await until(lambda: last_unsolicited(emulator, 1, 2).value == 2000)
        feed(gateway, p_plus="5000")
        await until(lambda: last_unsolicited(emulator, 1, 2).value == 5000)
        # Never two reports of one value closer than report_min_interval_s (0.3 s).
        times: dict[tuple[int, int], list[float]] = {}
        for r in emulator.unsolicited():
            times.setdefault((r.report.rate_type, r.report.scale), []).append(r.at)
        for arrivals in times.values():
            assert all(b - a >= 0.25 for a, b in itertools.pairwise(arrivals))
        # A Get from any node is answered to that node; one sent to many nodes is not.
        report = await emulator.ask(MeterGet(2, 1, True), MeterReport, node_id=7)
        assert report.value == 5000
        assert emulator.reports[-1].node_id == 7
        try:
            await emulator.ask(
                MeterGet(2, 1, True), MeterReport, node_id=7, rx_status=0x08, timeout_s=0.5
            )
            raise AssertionError("a multicast Get was answered")
        except TimeoutError:
            pass


async def test_periodic_reports_without_change(tmp_path: Path) -> None:
    async with included(tmp_path, report_interval_s=0.5) as (_gateway, emulator):
        count = len(emulator.unsolicited())
        await until(lambda: len(emulator.unsolicited()) >= count + 8, 5)


async def test_exclusion_learn_mode_timeout_and_bad_mode(tmp_path: Path) -> None:
    async with included(tmp_path, learn_timeout_s=0.3) as (gateway, emulator):
        await gateway.execute(Command("main", "exclude", "c2"))
        await asyncio.wait_for(emulator.excluded.wait(), 5)
        assert emulator.memory.node_id == 0
        await until(lambda: "zwave_excluded" in kinds_of(gateway))
        count = len(emulator.unsolicited())
        feed(gateway, p_plus="9000")
        await asyncio.sleep(0.6)
        assert len(emulator.unsolicited()) == count  # no lifeline outside a network
        emulator.answer_learn_mode = False  # nobody is including
        await gateway.execute(Command("main", "learn_mode", "c3"))
        await until(lambda: "zwave_learn_mode_timeout" in kinds_of(gateway))
        sent = [m for m in emulator.host_messages if isinstance(m, SetLearnModeRequest)]
        assert [m.mode for m in sent] == [
            LearnMode.NWI,
            LearnMode.NWE,
            LearnMode.NWI,
            LearnMode.DISABLE,
        ]
        # The command table refuses an unknown mode, naming the field, before the module sees it.
        with pytest.raises(CommandError, match=r"`mode` .bogus. is not one of"):
            await gateway.execute(Command("main", "learn_mode", "c4", {"mode": "bogus"}))


def kinds_of(gateway: Gateway) -> list[str]:
    return [event.kind for _, event in gateway.store.events("main")]


async def test_a_stick_with_controller_firmware_is_refused(tmp_path: Path) -> None:
    port = tmp_path / "ttyZW"
    emulator = ControllerEmulator(end_node_firmware=False)
    settings = write_config(tmp_path, port, sim=False)
    async with plugged(port, emulator), running(settings) as gateway:
        await until(lambda: gateway.health["zw"].state == "backoff")
        assert "controller firmware" in (gateway.health["zw"].last_error or "")


async def test_simulate_zwave_cli_interviews_a_node_it_already_knows(tmp_path: Path) -> None:
    port = tmp_path / "ttyCLI"
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY),
        "simulate",
        "zwave",
        "--pty",
        str(port),
        "--node-id",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await until(port.exists)
        async with running(write_config(tmp_path, port)) as gateway:
            lines: list[dict[str, Any]] = []
            async with asyncio.timeout(15):
                while not any(line["name"] == "energy_import" for line in lines):
                    assert process.stdout is not None
                    lines.append(json.loads(await process.stdout.readline()))
            assert {line["node"] for line in lines} == {1}  # answers go to the controller
            assert gateway.health["zw"].restarts == 0
    finally:
        process.terminate()
        await process.wait()


async def test_reports_follow_changes_without_polling(tmp_path: Path) -> None:
    # The node is a sink: told of the meter's changes, it needs no timer to see them. With
    # the timer an hour long, a change still goes out at once, and one held back by
    # report_min_interval_s goes out when that has passed, with no further change.
    async with included(tmp_path, poll_interval_s=3600.0) as (gateway, emulator):
        feed(gateway, p_plus="2000")
        await until(lambda: last_unsolicited(emulator, 1, 2).value == 2000)
        feed(gateway, p_plus="5000")  # within report_min_interval_s of the last report
        await until(lambda: last_unsolicited(emulator, 1, 2).value == 5000)
