"""`meter-gateway scan` against three emulated meters on a pty: primary and secondary search."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from modules.mbus.emulator import build_bus
from modules.mbus.scan import main as scan_main
from tests.modules.mbus_support import emulated
from tests.support.processes import GATEWAY

# Two ids share "382", so the secondary search must narrow three digits deep.
IDS = ["38200001", "38250002", "61000003"]
FAST = ["--baudrate", "38400", "--latency", "0.01", "--retries", "0"]


async def test_scan_finds_three_meters_by_primary_and_secondary_address(tmp_path: Path) -> None:
    bus = build_bus(3, secondaries=IDS)
    async with emulated(tmp_path / "ttyMBUS", bus) as tty:
        process = await asyncio.create_subprocess_exec(
            str(GATEWAY),
            "scan",
            tty,
            *FAST,
            "--last",
            "5",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    result = json.loads(stdout)
    found = {device["id"]: device for device in result["devices"]}
    assert sorted(found) == IDS
    for index, ident in enumerate(IDS):
        assert found[ident]["primary"] == index + 1
        assert found[ident]["found_by"] == ["primary", "secondary"]
        assert found[ident]["manufacturer"] == "KAM"
        assert found[ident]["medium"] == "electricity"
        assert found[ident]["secondary_address"] == f"{ident}2D2C0102"
    assert result["collisions"] == []
    progress = stderr.decode()
    assert "collision, narrowing" in progress
    assert "secondary search: 3 meter(s)" in progress
    assert bus.collisions >= 4  # the full wildcard, 3..., 38..., 382...


async def test_scan_reports_meters_sharing_a_primary_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bus = build_bus(3, secondaries=IDS)
    bus.slaves[2].primary = 1  # a second meter left at address 1
    async with emulated(tmp_path / "ttyMBUS", bus) as tty:
        status = await asyncio.to_thread(
            scan_main, ["--url", tty, *FAST, "--primary", "--first", "1", "--last", "3"]
        )
    out = capsys.readouterr()
    assert status == 0
    rows = [line.split() for line in out.out.splitlines()]
    assert rows[0][:3] == ["primary", "secondary", "id"]
    assert rows[1][:3] == ["2", "382500022D2C0102", "38250002"]
    assert "note: primary address 1: several meters answer" in out.out
    assert "primary scan 1..3: 1 meter(s)" in out.err


async def test_scan_of_an_empty_bus_exits_1(tmp_path: Path) -> None:
    async with emulated(tmp_path / "ttyMBUS", build_bus(0)) as tty:
        status = await asyncio.to_thread(scan_main, [tty, *FAST, "--last", "2"])
    assert status == 1


def test_scan_of_a_missing_port_exits_2(tmp_path: Path) -> None:
    assert scan_main([str(tmp_path / "nothing"), "--secondary"]) == 2
