"""The S0 module in an in-process Gateway, its GPIO lines on a software chip.

Only the event source differs from a Pi: the adapter, the pulse arithmetic, the engine and the
store are the real ones. The software chip's clock is driven by the test, like gpio-sim's pulls.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import config
from gateway.app import Gateway
from gateway.engine import Register
from gateway.errors import CommandError
from gateway.model import Command
from gateway.store import Store
from modules.s0.adapter import STATE_KEY
from modules.s0.pulses import NS_PER_S, Direction, Total, decode_totals, encode_totals
from modules.s0.software import SoftwareChip
from tests.support.gateway import offline_text, running, until

MS = 1_000_000
A_PLUS, P_PLUS, A_MINUS, P_MINUS = "1-0:1.8.0", "1-0:1.7.0", "1-0:2.8.0", "1-0:2.7.0"
BURST_W = 105 * 3 * 230  # 72.45 kW: 105 A on three phases at 230 V


class Clock:
    """CLOCK_MONOTONIC as the test says it is."""

    def __init__(self) -> None:
        self.ns = 1_000 * NS_PER_S

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> int:
        self.ns += round(seconds * NS_PER_S)
        return self.ns


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def chip(clock: Clock) -> Iterator[SoftwareChip]:
    with SoftwareChip("s0test", ["S0", "DIR", "SPARE"], clock=clock) as instance:
        yield instance


def settings_for(tmp_path: Path, modules: str) -> config.Settings:
    # Trains here take simulated minutes but arrive within milliseconds of real time.
    meters = '[[meters]]\nid = "a"\n[meters.limits]\nmax_power_w = 1e12\n[[meters]]\nid = "b"\n'
    return config.loads(
        offline_text(tmp_path, meters + modules, persist_interval_s=0.1), source="test.toml"
    )


def s0_module(name: str = "s0a", **keys: object) -> str:
    options: dict[str, object] = {
        "chip": "software:s0test",
        "line": "S0",
        "publish_interval_s": 0.02,
        "save_interval_s": 0.1,
    }
    options.update(keys)
    lines = [f'[[modules]]\ntype = "s0"\nname = "{name}"\nmeter = "a"']
    for key, value in options.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


SIM_B = '[[modules]]\ntype = "sim"\nname = "simb"\nmeter = "b"\ninterval_s = 0.05\n'


def value(gateway: Gateway, code: str, meter: str = "a") -> object:
    register = gateway.engines[meter].registers.get(code)
    return None if register is None else register.value


def train(
    chip: SoftwareChip, clock: Clock, count: int, period_s: float, width_s: float = 0.03
) -> int:
    """``count`` pulses ``period_s`` apart from now; the clock ends at the last one's release.

    Returns the time of the last pulse's start (the edge its power is timed from).
    """
    start = clock.ns
    width_ns = round(width_s * NS_PER_S)
    for i in range(count):
        chip.pulse("S0", at_ns=start + round(i * period_s * NS_PER_S), width_ns=width_ns)
    last = start + round((count - 1) * period_s * NS_PER_S)
    clock.ns = last + width_ns
    return last


def kinds(gateway: Gateway, kind: str, meter: str = "a") -> list[dict[str, object]]:
    return [
        dict(event.data) | {"detail": event.detail}
        for _, event in gateway.store.events(meter, kind=kind)
    ]


async def test_a_burst_and_an_idle_gap_give_exact_energy_and_power(
    tmp_path: Path, chip: SoftwareChip, clock: Clock
) -> None:
    settings = settings_for(tmp_path, s0_module(initial_import_kwh="12345.678"))
    async with running(settings) as gateway:
        await until(lambda: value(gateway, A_PLUS) == Decimal("12345.678"))
        assert value(gateway, P_PLUS) is None  # no interval seen yet: unknown, not 0
        # 1000 s at 105 A on three phases, 20.125 pulses per second.
        last = train(chip, clock, 20_125, 3600 / BURST_W)
        await until(lambda: value(gateway, A_PLUS) == Decimal("12365.803"))
        await until(lambda: value(gateway, P_PLUS) == BURST_W)
        assert gateway.health["s0a"].state == "running"
        assert kinds(gateway, "implausible_pulse_rate") == []
        # Quiet: the power can be at most one pulse's energy over the quiet time ...
        clock.ns = last + 10 * NS_PER_S
        await until(lambda: value(gateway, P_PLUS) == Decimal("360.0"))
        clock.ns = last + 100 * NS_PER_S
        await until(lambda: value(gateway, P_PLUS) == Decimal("36.0"))
        # ... and after power_timeout_s (300 s) it is 0.
        clock.ns = last + 300 * NS_PER_S
        await until(lambda: value(gateway, P_PLUS) == 0)
        # Two hours on, pulses come back at 1 Hz: the rate shows from the second one.
        clock.advance(7200)
        train(chip, clock, 3, 1.0)
        await until(lambda: value(gateway, P_PLUS) == Decimal("3600.0"))
        assert value(gateway, A_PLUS) == Decimal("12365.806")


async def test_unknown_total_publishes_power_only_until_set_total(
    tmp_path: Path, chip: SoftwareChip, clock: Clock
) -> None:
    async with running(settings_for(tmp_path, s0_module())) as gateway:
        train(chip, clock, 5, 0.5)
        await until(lambda: value(gateway, P_PLUS) == Decimal("7200.0"))
        assert value(gateway, A_PLUS) is None, "an unknown total is never published as 0"
        await gateway.execute(Command(meter="a", name="set_total", id="c1", args={"kwh": "4321.5"}))
        await until(lambda: value(gateway, A_PLUS) == Decimal("4321.5"))
        clock.advance(0.5)
        train(chip, clock, 3, 0.5)
        await until(lambda: value(gateway, A_PLUS) == Decimal("4321.503"))
        (event,) = kinds(gateway, "total_set")
        assert event["value"] == "4321.5" and event["previous"] is None
        assert event["module"] == "s0a" and event["obis"] == A_PLUS


async def test_set_total_below_the_register_is_taken_in_one_step(
    tmp_path: Path, chip: SoftwareChip, clock: Clock
) -> None:
    settings = settings_for(tmp_path, s0_module(initial_import_kwh="100"))
    async with running(settings) as gateway:
        train(chip, clock, 10, 1.0)
        await until(lambda: value(gateway, A_PLUS) == Decimal("100.010"))
        # The command table refuses what is no total at all, naming the field, at once ...
        for args in ({"kwh": "-3"}, {"kwh": "lots"}, {"kwh": 5, "register": "inport"}):
            with pytest.raises(CommandError, match=r"args\.(kwh|register)|`kwh`"):
                await gateway.execute(Command(meter="a", name="set_total", id="bad", args=args))
        # ... and the module what its configuration does not count (no export line here).
        args = {"kwh": "5", "register": "export"}
        await gateway.execute(Command(meter="a", name="set_total", id="bad", args=args))
        await until(lambda: len(kinds(gateway, "command_refused")) == 1)
        assert value(gateway, A_PLUS) == Decimal("100.010"), "a refused command changes nothing"
        # The meter's display is the truth: the module tells the engine to take the new total.
        await gateway.execute(Command(meter="a", name="set_total", id="c2", args={"kwh": 99.25}))
        await until(lambda: value(gateway, A_PLUS) == Decimal("99.25"))
        assert kinds(gateway, "registers_rebased")
        assert not kinds(gateway, "register_decrease")
        train(chip, clock, 2, 1.0)
        await until(lambda: value(gateway, A_PLUS) == Decimal("99.252"))


async def test_a_restart_in_the_middle_of_a_train_continues_the_count(
    tmp_path: Path, chip: SoftwareChip, clock: Clock
) -> None:
    settings = settings_for(tmp_path, s0_module(initial_import_kwh="500"))
    async with running(settings) as gateway:
        await until(lambda: value(gateway, A_PLUS) == Decimal("500"))
        train(chip, clock, 400, 0.25)
        # Stopped at once: the edges already reported are counted and written on the way out.
    store = Store(tmp_path / "gateway.db")
    saved = decode_totals(store.get_state("s0a", STATE_KEY), 1000)
    (register,) = [r for r in store.load_registers("a") if r.obis == A_PLUS]
    store.close()
    assert saved["import"].kwh(1000) == Decimal("500.4")
    assert register.value == Decimal("500.4")
    async with running(settings) as gateway:
        await until(lambda: gateway.health["s0a"].frames_ok > 0)
        assert value(gateway, A_PLUS) == Decimal("500.4")
        clock.advance(0.25)
        train(chip, clock, 350, 0.25)
        await until(lambda: value(gateway, A_PLUS) == Decimal("500.75"))
        # The initial value in the config applied once; it never resets a known total.
        assert gateway.health["s0a"].restarts == 0


async def test_the_count_waits_for_the_checkpoint_and_a_store_fault_does_not_stop_it(
    tmp_path: Path, chip: SoftwareChip, clock: Clock
) -> None:
    """The count rides in the gateway's checkpoints (no commit of its own every
    save_interval_s): counting goes on while the store refuses writes, and the count is
    written once the store takes writes again."""
    settings = settings_for(tmp_path, s0_module(initial_import_kwh="500"))
    async with running(settings) as gateway:
        await until(lambda: value(gateway, A_PLUS) == Decimal("500"))
        # SQLite refuses every write from here on, as on a file system gone read-only.
        gateway.store.connection.execute("PRAGMA query_only = 1")
        train(chip, clock, 200, 0.25)
        await until(lambda: value(gateway, A_PLUS) == Decimal("500.2"))
        await until(lambda: gateway.store_problem is not None, what="the fault said")
        assert gateway.health["s0a"].restarts == 0, gateway.health["s0a"].last_error
        gateway.store.connection.execute("PRAGMA query_only = 0")
        await until(
            lambda: (
                (saved := gateway.store.get_state("s0a", STATE_KEY)) is not None
                and decode_totals(saved, 1000)["import"].kwh(1000) == Decimal("500.2")
            ),
            what="the count on disk",
        )


@pytest.mark.parametrize("ahead", ["module_state", "engine_register"])
async def test_after_a_crash_the_larger_of_saved_count_and_register_wins(
    tmp_path: Path, chip: SoftwareChip, clock: Clock, ahead: str
) -> None:
    """A kill -9 leaves the module state and the registers from different moments."""
    settings = settings_for(tmp_path, s0_module(initial_import_kwh="10"))
    store = Store(tmp_path / "gateway.db")
    at = datetime(2024, 1, 1, tzinfo=UTC)
    state: dict[Direction, Total] = {"import": Total(Decimal("10"), 250), "export": Total(None)}
    register = Decimal("10.3") if ahead == "engine_register" else Decimal("10.2")
    store.put_state("s0a", STATE_KEY, encode_totals(state, 1000))
    store.save_registers("a", [Register(A_PLUS, register, "kWh", at)])
    store.close()
    expected = Decimal("10.3") if ahead == "engine_register" else Decimal("10.25")
    async with running(settings) as gateway:
        await until(lambda: gateway.health["s0a"].frames_ok > 0)
        assert value(gateway, A_PLUS) == expected
        train(chip, clock, 5, 1.0)
        await until(lambda: value(gateway, A_PLUS) == expected + Decimal("0.005"))


async def test_dropped_kernel_events_are_counted_and_reported(
    tmp_path: Path, chip: SoftwareChip, clock: Clock
) -> None:
    settings = settings_for(tmp_path, s0_module(initial_import_kwh="1"))
    async with running(settings) as gateway:
        train(chip, clock, 5, 1.0)
        await until(lambda: value(gateway, A_PLUS) == Decimal("1.005"))
        chip.drop_next("S0", 6)  # three whole pulses lost in a full kernel buffer
        clock.advance(1)
        train(chip, clock, 5, 1.0)
        await until(lambda: value(gateway, A_PLUS) == Decimal("1.010"))
        (event,) = kinds(gateway, "pulses_dropped")
        assert event["dropped_events"] == 6 and event["pulses"] == 3
        assert "S0 of software:s0test" in str(event["detail"])


async def test_an_impossible_rate_is_an_event(
    tmp_path: Path, chip: SoftwareChip, clock: Clock
) -> None:
    settings = settings_for(
        tmp_path, s0_module(initial_import_kwh="1", imax_a=10.0, phases=1, min_pulse_s=0.0)
    )
    async with running(settings) as gateway:
        train(chip, clock, 20, 0.2, width_s=0.05)  # 18 kW on a 10 A single-phase meter
        await until(lambda: kinds(gateway, "implausible_pulse_rate"))
        await until(lambda: value(gateway, A_PLUS) == Decimal("1.020"))


async def test_glitches_are_ignored_and_reported(
    tmp_path: Path, chip: SoftwareChip, clock: Clock
) -> None:
    settings = settings_for(tmp_path, s0_module(initial_import_kwh="1"))
    async with running(settings) as gateway:
        train(chip, clock, 4, 1.0)
        clock.advance(0.3)
        train(chip, clock, 3, 0.1, width_s=0.002)  # 2 ms spikes: interference, not pulses
        await until(lambda: kinds(gateway, "pulse_glitches"))
        await until(lambda: value(gateway, A_PLUS) == Decimal("1.004"))
        (event,) = kinds(gateway, "pulse_glitches")
        assert event["glitches"] == 3


async def test_the_direction_line_sends_pulses_to_export(
    tmp_path: Path, chip: SoftwareChip, clock: Clock
) -> None:
    module = s0_module(direction_line="DIR", initial_import_kwh="10", initial_export_kwh="2")
    async with running(settings_for(tmp_path, module)) as gateway:
        # Pull-ups: the direction line reads high, which means import.
        train(chip, clock, 3, 1.0)
        await until(lambda: value(gateway, A_PLUS) == Decimal("10.003"))
        chip.set_level("DIR", False, at_ns=clock.advance(0.5))
        clock.advance(0.5)
        train(chip, clock, 4, 0.5)
        await until(lambda: value(gateway, A_MINUS) == Decimal("2.004"))
        await until(lambda: value(gateway, P_MINUS) == Decimal("7200.0"))
        assert value(gateway, P_PLUS) == 0
        assert value(gateway, A_PLUS) == Decimal("10.003")


@pytest.mark.parametrize(
    ("module", "message", "prepare"),
    [
        (
            s0_module(chip="software:nosuchchip", initial_import_kwh="1"),
            "no GPIO chip 'software:nosuchchip'",
            None,
        ),
        (
            s0_module(line="GPIO99", initial_import_kwh="1"),
            "no line 'GPIO99' on GPIO chip software:s0test",
            None,
        ),
        (
            s0_module(initial_import_kwh="1"),
            "S0 of software:s0test is held by 'pigpiod'",
            "hold",
        ),
    ],
    ids=["unknown-chip", "unknown-line", "line-held"],
)
async def test_bad_config_is_named_and_retried_while_others_run(
    tmp_path: Path, chip: SoftwareChip, clock: Clock, module: str, message: str, prepare: str | None
) -> None:
    if prepare == "hold":
        chip.hold("S0", "pigpiod")
    async with running(settings_for(tmp_path, module + SIM_B)) as gateway:
        await until(lambda: gateway.health["s0a"].restarts >= 1)
        assert message in (gateway.health["s0a"].last_error or "")
        frames = gateway.health["simb"].frames_ok
        await until(lambda: gateway.health["simb"].frames_ok > frames + 3)
        assert gateway.health["simb"].restarts == 0
        if prepare == "hold":
            # The other process lets go: the supervisor's next attempt gets the line.
            chip.release("S0")
            await until(lambda: gateway.health["s0a"].frames_ok > 0, 15)
            train(chip, clock, 3, 1.0)
            await until(lambda: value(gateway, P_PLUS) == Decimal("3600.0"), 15)


def test_the_example_config_shows_every_key() -> None:
    from modules.s0.adapter import S0Config  # noqa: PLC0415
    from modules.s0.output import S0OutputConfig  # noqa: PLC0415

    text = (Path(__file__).parents[2] / "conf" / "examples" / "s0.toml").read_text()
    for struct in (S0Config, S0OutputConfig):
        for key in struct.__struct_fields__:
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"{struct.__name__}.{key}"
