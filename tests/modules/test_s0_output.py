"""S0 output: a meter's A+ repeated as 30 ms pulses, wired back into an S0 input."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import config, registry
from gateway.app import Gateway
from gateway.engine import Register
from gateway.store import Store
from modules.s0.pulses import NS_PER_S
from modules.s0.software import SoftwareChip
from tests.support.gateway import offline_text, running, until

A_PLUS = "1-0:1.8.0"
MS = 1_000_000


@pytest.fixture(autouse=True)
def s0_out_registered() -> Iterator[None]:
    """The registry entry the core is asked to add (until then, tests add it)."""
    added = "s0_out" not in registry.ADAPTERS
    registry.ADAPTERS.setdefault("s0_out", "modules.s0.output:S0OutputAdapter")
    yield
    if added:
        del registry.ADAPTERS["s0_out"]


@pytest.fixture
def chips() -> Iterator[tuple[SoftwareChip, SoftwareChip]]:
    with SoftwareChip("src", ["S0"]) as source, SoftwareChip("loop", ["OUT", "IN"]) as loop:
        loop.wire("OUT", "IN")
        yield source, loop


def settings_for(tmp_path: Path, modules: str) -> config.Settings:
    meters = "".join(
        f'[[meters]]\nid = "{meter}"\n[meters.limits]\nmax_power_w = 1e12\n' for meter in "ab"
    )
    text = offline_text(tmp_path, meters + modules, persist_interval_s=0.1)
    return config.loads(text, source="test.toml")


INPUT_A = """
[[modules]]
type = "s0"
name = "s0a"
meter = "a"
chip = "software:src"
line = "S0"
initial_import_kwh = "2000"
publish_interval_s = 0.02
"""
OUTPUT = """
[[modules]]
type = "s0_out"
name = "out"
meter = "a"
chip = "software:loop"
line = "OUT"
poll_interval_s = 0.02
save_interval_s = 0.1
"""
INPUT_B = """
[[modules]]
type = "s0"
name = "s0b"
meter = "b"
chip = "software:loop"
line = "IN"
bias = "disabled"
edge = "rising"
initial_import_kwh = "0"
publish_interval_s = 0.02
"""


def value(gateway: Gateway, meter: str) -> object:
    register = gateway.engines[meter].registers.get(A_PLUS)
    return None if register is None else register.value


def pulses_of(history: list[tuple[int, bool]]) -> list[tuple[int, int]]:
    """(start, width) of each high period an output drove."""
    found, start = [], None
    for at, high in history:
        if high:
            start = at
        elif start is not None:
            found.append((start, at - start))
            start = None
    return found


# The output is a sink, told of the register's changes: with its poll interval an hour long
# the pulses follow the register just the same.
@pytest.mark.parametrize("poll_interval_s", [0.02, 3600.0])
async def test_a_meter_repeated_on_s0_counts_the_same_on_another_input(
    tmp_path: Path, chips: tuple[SoftwareChip, SoftwareChip], poll_interval_s: float
) -> None:
    """Meter a counts pulses; its A+ goes out on OUT, wired to IN, where meter b counts them."""
    source, loop = chips
    output = OUTPUT.replace("poll_interval_s = 0.02", f"poll_interval_s = {poll_interval_s}")
    async with running(settings_for(tmp_path, INPUT_A + output + INPUT_B)) as gateway:
        await until(lambda: value(gateway, "a") == Decimal("2000"))
        await until(lambda: gateway.store.get_state("out", "emitted") is not None)
        for _ in range(25):
            source.pulse("S0")
            await asyncio.sleep(0.005)
        await until(lambda: value(gateway, "a") == Decimal("2000.025"))
        await until(lambda: value(gateway, "b") == Decimal("0.025"), 15)
        emitted = pulses_of(loop.history("OUT"))
        assert len(emitted) == 25
        for (start, width), (following, _) in itertools.pairwise(emitted):
            assert 29 * MS <= width <= 60 * MS, "30 ms pulses, as the 382L's S0 output"
            assert following - (start + width) >= 29 * MS, "and at least 30 ms apart"
        assert gateway.health["s0b"].restarts == 0


async def test_energy_accrued_while_down_is_emitted_after_a_restart(
    tmp_path: Path, chips: tuple[SoftwareChip, SoftwareChip]
) -> None:
    _source, loop = chips
    at = datetime(2024, 1, 1, tzinfo=UTC)
    store = Store(tmp_path / "gateway.db")
    store.save_registers("a", [Register(A_PLUS, Decimal("10.000"), "kWh", at)])
    store.close()
    async with running(settings_for(tmp_path, OUTPUT)) as gateway:
        await until(lambda: gateway.store.get_state("out", "emitted") is not None)
    assert pulses_of(loop.history("OUT")) == [], "the past is not replayed on a first start"
    store = Store(tmp_path / "gateway.db")
    store.save_registers("a", [Register(A_PLUS, Decimal("10.0126"), "kWh", at)])
    store.close()
    async with running(settings_for(tmp_path, OUTPUT + INPUT_B)) as gateway:
        await until(lambda: value(gateway, "b") == Decimal("0.012"), 15)
    assert len(pulses_of(loop.history("OUT"))) == 12


async def test_a_jump_or_a_step_back_is_skipped_and_reported(
    tmp_path: Path, chips: tuple[SoftwareChip, SoftwareChip]
) -> None:
    _source, loop = chips
    at = datetime(2024, 1, 1, tzinfo=UTC)
    store = Store(tmp_path / "gateway.db")
    store.save_registers("a", [Register(A_PLUS, Decimal("10"), "kWh", at)])
    store.close()
    async with running(settings_for(tmp_path, OUTPUT)) as gateway:
        await until(lambda: gateway.store.get_state("out", "emitted") is not None)
    for seen, register in enumerate((Decimal("5000"), Decimal("4000")), start=1):
        store = Store(tmp_path / "gateway.db")
        store.save_registers("a", [Register(A_PLUS, register, "kWh", at)])
        store.close()
        async with running(settings_for(tmp_path, OUTPUT)) as gateway:

            def skipped(times: int = seen) -> bool:
                return len(gateway.store.events("a", kind="s0_output_skipped")) == times

            await until(skipped)
    store = Store(tmp_path / "gateway.db")
    details = [event.detail for _, event in store.events("a", kind="s0_output_skipped")]
    store.close()
    assert "jumped by 4990 kWh" in details[0] and "went back by 1000 kWh" in details[1]
    assert pulses_of(loop.history("OUT")) == []


async def test_a_held_output_line_is_named_and_retried(
    tmp_path: Path, chips: tuple[SoftwareChip, SoftwareChip]
) -> None:
    _source, loop = chips
    loop.hold("OUT", "relayd")
    async with running(settings_for(tmp_path, OUTPUT)) as gateway:
        await until(lambda: gateway.health["out"].restarts >= 1)
        assert "OUT of software:loop is held by 'relayd'" in (
            gateway.health["out"].last_error or ""
        )


def test_pulse_timing_constants_match_the_382l() -> None:
    from modules.s0.output import S0OutputConfig  # noqa: PLC0415

    defaults = S0OutputConfig(type="s0_out", name="o", meter="m", line=1)
    assert defaults.pulses_per_kwh == 1000
    assert defaults.pulse_s == 0.03
    assert defaults.register == A_PLUS
    assert NS_PER_S == 1_000_000_000
