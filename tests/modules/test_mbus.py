"""The mbus adapter against the emulated 382L bus over a real pty, into an in-process Gateway."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from gateway.app import Gateway
from gateway.engine import Register
from gateway.transport import serve_tcp
from modules.mbus.emulator import Line, build_bus, serve
from tests.modules.mbus_support import device, emulated, module, settings
from tests.support.gateway import running, until
from tests.support.processes import free_port

IDS = ["38200001", "38250002", "61000003"]


def kinds(gateway: Gateway, meter: str) -> list[str]:
    return [event.kind for _, event in gateway.store.events(meter)]


async def test_values_of_a_primary_meter_reach_the_engine(tmp_path: Path) -> None:
    bus = build_bus(1, address=5)
    port = tmp_path / "ttyMBUS"
    async with emulated(port, bus):
        config = settings(tmp_path, module(port, device("m1", primary=5)))
        async with running(config) as gateway:
            registers = gateway.engines["m1"].registers
            await until(lambda: "1-0:1.8.0" in registers and "mbus:fabrication_no" in registers)
            assert registers["1-0:1.8.0"].value == Decimal("4321.00")
            assert registers["1-0:1.8.0"].unit == "kWh"
            tariffs = [Decimal(str(registers[f"1-0:1.8.{t}"].value)) for t in (1, 2)]
            assert sum(tariffs) == Decimal("4321")
            assert 200 < Decimal(str(registers["1-0:32.7.0"].value)) < 260
            assert registers["1-0:31.7.0"].unit == "A"
            assert registers["1-0:14.7.0"].unit == "Hz"
            assert registers["mbus:fabrication_no"].value == "38200001"
            assert registers["mbus:on_time"].unit == "h"
            assert registers["1-0:1.8.0"].at.second == 0, "stamped with the meter's clock"
            assert gateway.health["bus1"].state == "running"
            assert gateway.health["bus1"].frames_failed == 0


async def test_a_readout_over_many_telegrams_follows_more_records_follow(tmp_path: Path) -> None:
    bus = build_bus(1, records_per_telegram=3)  # 23 records: 8 telegrams per readout
    port = tmp_path / "ttyMBUS"
    async with emulated(port, bus):
        config = settings(tmp_path, module(port, device("m1", primary=1)))
        async with running(config) as gateway:
            registers = gateway.engines["m1"].registers
            await until(lambda: gateway.health["bus1"].frames_ok >= 2)
            # The first and the last telegram's records arrive together, as one sample.
            assert "1-0:1.8.0" in registers and "mbus:fabrication_no" in registers
            assert registers["1-0:1.8.0"].at == registers["mbus:fabrication_no"].at
            assert bus.slaves[0].requests >= 16
            assert gateway.health["bus1"].frames_failed == 0


async def test_a_readout_cut_by_max_telegrams_starts_over_with_snd_nke(tmp_path: Path) -> None:
    bus = build_bus(1, records_per_telegram=3)
    port = tmp_path / "ttyMBUS"
    async with emulated(port, bus):
        config = settings(tmp_path, module(port, device("m1", primary=1), max_telegrams=2))
        async with running(config) as gateway:
            registers = gateway.engines["m1"].registers
            await until(lambda: gateway.health["bus1"].frames_ok >= 3)
            # Every readout gets the first two telegrams again, never the rest.
            assert "1-0:1.8.0" in registers
            assert "mbus:fabrication_no" not in registers


async def test_secondary_addressing_feeds_each_meter_its_own_values(tmp_path: Path) -> None:
    bus = build_bus(3, secondaries=IDS)
    port = tmp_path / "ttyMBUS"
    devices = (
        device("m1", secondary=IDS[0])
        + device("m2", secondary="382500022D2C0102")  # libmbus's 16 digits: id, M, V, T
        + device("m3", secondary="6FFFFFFF")  # a wildcard that matches one meter only
    )
    async with emulated(port, bus):
        config = settings(tmp_path, module(port, devices), meters=("m1", "m2", "m3"))
        async with running(config) as gateway:
            for meter, ident in zip(("m1", "m2", "m3"), IDS, strict=True):
                registers = gateway.engines[meter].registers

                def identified(r: Mapping[str, Register] = registers) -> bool:
                    return "mbus:fabrication_no" in r

                await until(identified)
                assert registers["mbus:fabrication_no"].value == ident
                assert "1-0:1.8.0" in registers
            assert gateway.health["bus1"].frames_failed == 0


async def test_a_wildcard_matching_two_meters_is_a_collision_not_a_value(tmp_path: Path) -> None:
    bus = build_bus(3, secondaries=IDS)
    port = tmp_path / "ttyMBUS"
    devices = device("m1", secondary="382FFFFF") + device("m2", primary=3)
    async with emulated(port, bus):
        config = settings(tmp_path, module(port, devices), meters=("m1", "m2"))
        async with running(config) as gateway:
            await until(lambda: "communication_lost" in kinds(gateway, "m1"))
            await until(lambda: "mbus:fabrication_no" in gateway.engines["m2"].registers)
            assert not gateway.engines["m1"].registers
            (_, lost) = gateway.store.events("m1", kind="communication_lost")[0]
            assert "several meters match" in lost.detail
            assert bus.collisions > 0
            assert gateway.health["bus1"].state == "running"


async def test_a_silent_meter_is_lost_once_and_restored_while_the_other_reads_on(
    tmp_path: Path,
) -> None:
    bus = build_bus(2)
    slaves = bus.slaves
    assert isinstance(slaves, list)  # the test unplugs a meter by taking it off the bus
    port = tmp_path / "ttyMBUS"
    devices = device("m1", primary=1) + device("m2", primary=2)
    async with emulated(port, bus):
        config = settings(tmp_path, module(port, devices, retries=1), meters=("m1", "m2"))
        async with running(config) as gateway:
            health = gateway.health["bus1"]
            await until(lambda: health.frames_ok >= 4)
            second = slaves.pop()  # meter 2 loses its bus connection
            await until(lambda: "communication_lost" in kinds(gateway, "m2"))
            before = health.frames_ok
            await until(lambda: health.frames_ok >= before + 3)  # m1 keeps being read
            assert kinds(gateway, "m2").count("communication_lost") == 1
            assert "m2" in (health.last_error or "")
            slaves.append(second)
            await until(lambda: "communication_restored" in kinds(gateway, "m2"))
            assert kinds(gateway, "m2").count("communication_lost") == 1
            assert "communication_lost" not in kinds(gateway, "m1")
            assert health.restarts == 0


async def test_unplug_and_replug_of_the_converter_recovers(tmp_path: Path) -> None:
    port = tmp_path / "ttyMBUS"
    config = settings(tmp_path, module(port, device("m1", primary=1)))
    async with emulated(port, build_bus(1)):
        gateway_cm = running(config)
        gateway = await gateway_cm.__aenter__()
        health = gateway.health["bus1"]
        await until(lambda: health.frames_ok >= 2)
    try:
        # The pty is gone: the adapter's link fails and the supervisor retries with backoff.
        await until(lambda: health.restarts >= 1)
        assert health.state == "backoff" or health.restarts >= 1
        frames = health.frames_ok
        assert kinds(gateway, "m1").count("communication_lost") == 1
        async with emulated(port, build_bus(1)):
            await until(lambda: health.frames_ok >= frames + 2, timeout_s=15)
            assert health.state == "running"
            await until(lambda: "communication_restored" in kinds(gateway, "m1"))
    finally:
        await gateway_cm.__aexit__(None, None, None)


async def test_an_echoing_level_converter(tmp_path: Path) -> None:
    bus = build_bus(2, secondaries=IDS)
    port = tmp_path / "ttyMBUS"
    devices = device("m1", primary=1) + device("m2", secondary=IDS[1])
    async with emulated(port, bus, Line(echo=True)):
        for echo in ("auto", True):
            data = tmp_path / str(echo)
            data.mkdir()
            config = settings(data, module(port, devices, echo=echo), meters=("m1", "m2"))
            async with running(config) as gateway:

                def both_identified(g: Gateway = gateway) -> bool:
                    return all(
                        "mbus:fabrication_no" in g.engines[m].registers for m in ("m1", "m2")
                    )

                await until(both_identified)
                assert gateway.health["bus1"].frames_failed == 0
        # Told there is no echo, the master takes the echo for the answer: nothing is read.
        data = tmp_path / "no-echo"
        data.mkdir()
        config = settings(data, module(port, devices, echo=False), meters=("m1", "m2"))
        async with running(config) as gateway:
            await until(lambda: "communication_lost" in kinds(gateway, "m1"))
            assert not gateway.engines["m1"].registers


async def test_answers_arriving_one_byte_at_a_time(tmp_path: Path) -> None:
    bus = build_bus(1)
    port = tmp_path / "ttyMBUS"
    async with emulated(port, bus, Line(byte_delay_s=0.002)):
        config = settings(tmp_path, module(port, device("m1", primary=1), baudrate=2400))
        async with running(config) as gateway:
            registers = gateway.engines["m1"].registers
            await until(lambda: "mbus:fabrication_no" in registers, timeout_s=15)
            assert gateway.health["bus1"].frames_failed == 0


async def test_garbled_answers_are_retried_and_counted(tmp_path: Path) -> None:
    bus = build_bus(1, records_per_telegram=10)
    port = tmp_path / "ttyMBUS"
    async with emulated(port, bus, Line(loss=0.3)):
        config = settings(tmp_path, module(port, device("m1", primary=1), retries=4))
        async with running(config) as gateway:
            health = gateway.health["bus1"]
            await until(lambda: health.frames_ok >= 4 and health.frames_failed >= 2, 20)
            assert "1-0:1.8.0" in gateway.engines["m1"].registers


async def test_an_mbus_tcp_gateway(tmp_path: Path) -> None:
    bus = build_bus(2, secondaries=IDS)
    tcp = free_port()
    server = await serve_tcp(tcp, lambda link: serve(bus, link))
    devices = device("m1", primary=1) + device("m2", secondary=IDS[1])
    async with server:
        config = settings(tmp_path, module(f"tcp://127.0.0.1:{tcp}", devices), meters=("m1", "m2"))
        async with running(config) as gateway:
            await until(
                lambda: all(
                    "mbus:fabrication_no" in gateway.engines[m].registers for m in ("m1", "m2")
                )
            )
            assert gateway.engines["m2"].registers["mbus:fabrication_no"].value == IDS[1]
