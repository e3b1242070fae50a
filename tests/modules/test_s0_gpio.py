"""The GPIO interface: the software chip, libgpiod's error paths, and gpio-sim where it exists.

gpio-sim (the kernel's simulated GPIO chip, configured through configfs) needs root and the
module loaded (``modprobe gpio-sim``); without it those tests are skipped and the software chip
stands in, driving the very same adapter code.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.errors import CannotConnect, FatalAdapterError
from modules.s0 import gpio
from modules.s0.gpio import InputSpec
from modules.s0.pulses import EdgeEvent
from modules.s0.software import SoftwareChip
from tests.support.gateway import offline_text, running, until

MS = 1_000_000
HAVE_GPIOD = importlib.util.find_spec("gpiod") is not None
GPIO_SIM = Path("/sys/kernel/config/gpio-sim")
HAVE_GPIO_SIM = HAVE_GPIOD and GPIO_SIM.is_dir() and os.geteuid() == 0
needs_gpiod = pytest.mark.skipif(not HAVE_GPIOD, reason="gpiod (the [gpio] extra) not installed")
needs_gpio_sim = pytest.mark.skipif(
    not HAVE_GPIO_SIM, reason="gpio-sim unavailable (needs root, configfs and modprobe gpio-sim)"
)
S0_FALLING = {"pulse": InputSpec("S0", "falling", "pull_up")}


# the software chip -----------------------------------------------------------------------------


async def test_software_edges_carry_given_times_and_line_sequence_numbers() -> None:
    with SoftwareChip("g1", ["S0", "DIR"]) as chip:
        specs = {"pulse": InputSpec("S0", "both", "pull_up"), "direction": InputSpec(1, "both")}
        source = gpio.open_inputs(chip.path, specs, consumer="test")
        try:
            assert source.levels == {"pulse": True, "direction": False}
            assert source.description == "S0 of software:g1 and DIR of software:g1"
            chip.pulse("S0", at_ns=5 * MS, width_ns=30 * MS)
            chip.set_level("DIR", True, at_ns=40 * MS)
            chip.set_level("DIR", True, at_ns=41 * MS)  # no change, no edge
            assert await source.read() == [
                EdgeEvent("pulse", False, 5 * MS, 1),
                EdgeEvent("pulse", True, 35 * MS, 2),
                EdgeEvent("direction", True, 40 * MS, 1),
            ]
        finally:
            source.close()


async def test_only_the_requested_edge_is_reported_and_drops_leave_gaps() -> None:
    with SoftwareChip("g2", 2) as chip:
        source = gpio.open_inputs(
            chip.path, {"pulse": InputSpec(0, "falling", "pull_up")}, consumer="t"
        )
        try:
            chip.pulse(0, at_ns=0)
            chip.drop_next(0, 2)
            for start in (100 * MS, 200 * MS, 300 * MS):
                chip.pulse(0, at_ns=start)
            events = await source.read()
            assert [(e.rising, e.line_seqno) for e in events] == [(False, 1), (False, 4)]
        finally:
            source.close()


async def test_a_cancelled_read_loses_nothing() -> None:
    with SoftwareChip("g3", ["S0"]) as chip:
        source = gpio.open_inputs(chip.path, S0_FALLING, consumer="t")
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await source.read()
            chip.pulse("S0", at_ns=7)
            assert [e.timestamp_ns for e in await source.read()] == [7]
        finally:
            source.close()


async def test_software_chip_errors_name_the_chip_and_line() -> None:
    with SoftwareChip("g4", ["S0"]) as chip:
        with pytest.raises(
            CannotConnect, match=r"no GPIO chip 'software:nope' \(software chips: software:g4"
        ):
            gpio.open_inputs("software:nope", S0_FALLING, consumer="t")
        with pytest.raises(FatalAdapterError, match=r"no line 'GPIO4' on GPIO chip software:g4"):
            gpio.open_inputs(chip.path, {"pulse": InputSpec("GPIO4", "falling")}, consumer="t")
        with pytest.raises(FatalAdapterError, match="no line 3 on"):
            gpio.open_output(chip.path, 3, consumer="t", drive="push_pull")
        first = gpio.open_inputs(chip.path, S0_FALLING, consumer="meter-gateway/s0a")
        with pytest.raises(CannotConnect, match="S0 of software:g4 is held by 'meter-gateway/s0a'"):
            gpio.open_inputs(chip.path, S0_FALLING, consumer="t")
        first.close()
        first.close()  # idempotent
        gpio.open_inputs(chip.path, S0_FALLING, consumer="t").close()
        with pytest.raises(ValueError, match="exists already"):
            SoftwareChip("g4")


async def test_outputs_record_their_levels_and_drive_wired_inputs() -> None:
    clock = iter(range(0, 10**12, MS))
    with SoftwareChip("g5", ["OUT", "IN"], clock=lambda: next(clock)) as chip:
        chip.wire("OUT", "IN")
        source = gpio.open_inputs(chip.path, {"pulse": InputSpec("IN", "rising")}, consumer="t")
        output = gpio.open_output(
            chip.path, "OUT", consumer="t", active_low=True, drive="open_drain"
        )
        try:
            output.set(True)  # active low: the line goes low
            output.set(False)
            assert [high for _, high in chip.history("OUT")] == [True, False, True]
            # Rising edges only: when the request drove it high, and at the end of the pulse.
            assert [e.timestamp_ns for e in await source.read()] == [0, 2 * MS]
        finally:
            output.close()
            output.close()
            source.close()
        assert chip.level("OUT")  # released inactive (high, as active_low)


def test_without_gpiod_a_real_chip_is_a_clear_fatal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)  # as if the [gpio] extra were not installed
    with pytest.raises(FatalAdapterError, match=r"pip install 'meter-gateway\[gpio\]'"):
        gpio.open_inputs("gpiochip0", S0_FALLING, consumer="t")


# libgpiod v2, on whatever chips this machine has --------------------------------------------------


@needs_gpiod
def test_libgpiod_names_a_missing_chip_and_lists_the_real_ones() -> None:
    with pytest.raises(CannotConnect, match=r"no GPIO chip 'gpiochip97' \(chips here: "):
        gpio.open_inputs("gpiochip97", S0_FALLING, consumer="t")
    with pytest.raises(CannotConnect, match=r"no GPIO chip '/dev/null'"):
        gpio.open_output("/dev/null", 1, consumer="t", drive="push_pull")
    with pytest.raises(CannotConnect, match=r"no GPIO chip 'pinctrl-nonesuch'"):
        gpio.open_inputs("pinctrl-nonesuch", S0_FALLING, consumer="t")


@needs_gpiod
def test_libgpiod_needs_a_chip_for_a_line_number() -> None:
    with pytest.raises(FatalAdapterError, match="a line given by number needs `chip`"):
        gpio.open_inputs(None, {"pulse": InputSpec(17, "falling")}, consumer="t")


@needs_gpiod
@pytest.mark.skipif(bool(list(Path("/dev").glob("gpiochip*"))), reason="this machine has GPIO")
def test_libgpiod_without_any_chip_says_so() -> None:
    with pytest.raises(CannotConnect, match="no GPIO chips to look for line 'GPIO17' on"):
        gpio.open_inputs(None, {"pulse": InputSpec("GPIO17", "falling")}, consumer="t")


# gpio-sim: the kernel's own simulated chip ------------------------------------------------------


@contextlib.contextmanager
def gpio_sim(name: str, lines: list[str]) -> Iterator[tuple[str, Path]]:
    """A live gpio-sim chip: (its gpiochipN name, its sysfs directory with sim_gpioN/pull)."""
    device = GPIO_SIM / name
    bank = device / "bank0"
    device.mkdir()
    bank.mkdir()
    try:
        (bank / "num_lines").write_text(str(len(lines)))
        (bank / "label").write_text(name)
        for offset, line_name in enumerate(lines):
            (bank / f"line{offset}").mkdir()
            (bank / f"line{offset}" / "name").write_text(line_name)
        (device / "live").write_text("1")
        chip_name = (bank / "chip_name").read_text().strip()
        dev_name = (device / "dev_name").read_text().strip()
        yield chip_name, Path("/sys/devices/platform") / dev_name / chip_name
    finally:
        with contextlib.suppress(OSError):
            (device / "live").write_text("0")
        for offset in range(len(lines)):
            with contextlib.suppress(OSError):
                (bank / f"line{offset}").rmdir()
        bank.rmdir()
        device.rmdir()


def pull(sysfs: Path, offset: int, up: bool) -> None:
    (sysfs / f"sim_gpio{offset}" / "pull").write_text("pull-up" if up else "pull-down")


def gateway_text(tmp_path: Path, module: str) -> str:
    meter = '[[meters]]\nid = "a"\n[meters.limits]\nmax_power_w = 1e12\n'
    return offline_text(tmp_path, meter + module, persist_interval_s=0.1)


def s0_module(chip: str, line: str) -> str:
    return (
        f'[[modules]]\ntype = "s0"\nname = "s0a"\nmeter = "a"\nchip = "{chip}"\nline = "{line}"\n'
        'initial_import_kwh = "100"\npublish_interval_s = 0.05\n'
    )


@needs_gpio_sim
async def test_gpio_sim_pulses_are_counted_and_timed_by_the_kernel(tmp_path: Path) -> None:
    with gpio_sim("mgw-s0", ["S0", "SPARE"]) as (_chip_name, sysfs):
        # Found by the chip's label, the way a Pi 5's "pinctrl-rp1" would be.
        async with running(gateway_text(tmp_path, s0_module("mgw-s0", "S0"))) as gateway:
            await until(lambda: gateway.health["s0a"].frames_ok > 0)
            for _ in range(10):  # 5 Hz, 30 ms pulses: 18 kW
                pull(sysfs, 0, up=False)
                await asyncio.sleep(0.03)
                pull(sysfs, 0, up=True)
                await asyncio.sleep(0.17)
            registers = gateway.engines["a"].registers
            await until(lambda: registers["1-0:1.8.0"].value == Decimal("100.010"))
            power = float(registers["1-0:1.7.0"].value)
            assert 15_000 < power < 21_000, power


@needs_gpio_sim
async def test_gpio_sim_line_held_by_another_process(tmp_path: Path) -> None:
    import gpiod  # noqa: PLC0415

    with gpio_sim("mgw-held", ["S0"]) as (chip_name, _sysfs):
        other = gpiod.request_lines(f"/dev/{chip_name}", {0: None}, consumer="other-daemon")
        try:
            async with running(gateway_text(tmp_path, s0_module(chip_name, "S0"))) as gateway:
                await until(lambda: gateway.health["s0a"].restarts >= 1)
                error = gateway.health["s0a"].last_error or ""
                assert f"line 0 (S0) of {chip_name} [mgw-held] is held by 'other-daemon'" in error
            with pytest.raises(
                FatalAdapterError, match=f"no line 'GPIO99' on GPIO chip {chip_name}"
            ):
                gpio.open_inputs(chip_name, {"pulse": InputSpec("GPIO99", "falling")}, consumer="t")
        finally:
            other.release()


@needs_gpio_sim
async def test_gpio_sim_output_line_follows(tmp_path: Path) -> None:
    with gpio_sim("mgw-out", ["OUT"]) as (chip_name, sysfs):
        output = gpio.open_output(chip_name, "OUT", consumer="t", drive="push_pull")
        try:
            output.set(True)
            assert (sysfs / "sim_gpio0" / "value").read_text().strip() == "1"
            output.set(False)
            assert (sysfs / "sim_gpio0" / "value").read_text().strip() == "0"
        finally:
            output.close()
