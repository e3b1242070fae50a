"""Clock faults: a Raspberry Pi boots without a real-time clock, and NTP may step the time later.

Nothing is stamped with a time from before the clock is believable (no profile interval,
billing record, debiting stop or event); a later step is a clock_adjusted event with the
interval flagged, never a register decrease. The guard's wall clock is injected; the meter
itself is the real sim module in a real Gateway with a real store.
"""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import config
from gateway.app import Gateway
from gateway.engine.records import ProfileFlag
from gateway.errors import CommandError
from gateway.model import Command
from gateway.store import profile_in, registers_in
from gateway.timekeeping import CLOCK_STEP_S, RELEASE_FLOOR, ClockGuard
from tests.faults.harness import gateway_process, wait_for_log
from tests.support.gateway import offline_text, serving, until
from tests.support.on_disk import on_disk
from tests.support.processes import free_port, wait_for_port

SIM = '[[meters]]\nid = "main"\n[[modules]]\ntype = "sim"\nname = "sim1"\nmeter = "main"\n'
SIM_FAST = SIM + "speed = 60.0\ninterval_s = 0.05\n"


class Wall:
    """A wall clock the test sets: real time plus an offset, or a fixed instant."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self.fixed: datetime | None = None
        self.mono = 0.0

    def __call__(self) -> datetime:
        return self.fixed if self.fixed is not None else datetime.now(UTC) + self.offset


def stored_times(db: Path) -> dict[str, list[str]]:
    with on_disk(db) as con:
        return {
            "events": [r[0] for r in con.execute("SELECT at FROM events")],
            "profile": [
                interval.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                for (meter,) in con.execute("SELECT meter FROM meter_checkpoint").fetchall()
                for interval in profile_in(con, meter)
            ],
            "billing": [r[0] for r in con.execute("SELECT at FROM billing")],
            "registers": [
                register.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                for (meter,) in con.execute("SELECT meter FROM meter_checkpoint")
                for register in registers_in(con, meter).values()
            ],
        }


def test_a_clock_before_the_release_or_the_stored_floor_is_not_believed() -> None:
    wall, mono = Wall(), [0.0]

    def later() -> float:  # the guard looks again at most once a second (RECHECK_S)
        mono[0] += 2.0
        return mono[0]

    wall.fixed = datetime(2019, 3, 1, tzinfo=UTC)
    guard = ClockGuard(None, synced=lambda: False, wall=wall, monotonic=later)
    assert not guard.check()
    assert "2019-03-01" in guard.why_not
    stored = datetime.now(UTC) + timedelta(days=30)
    wall.fixed = datetime.now(UTC)
    guard = ClockGuard(stored, synced=lambda: None, wall=wall, monotonic=later)
    assert not guard.check(), "behind the newest stored time: maybe fake-hwclock's last save"
    assert "newest time in the store" in guard.why_not
    wall.fixed = stored + timedelta(seconds=1)
    assert guard.check()
    wall.fixed = datetime(2019, 3, 1, tzinfo=UTC)
    assert guard.check(), "once believed, a later step is reported, not a reason to stop"


def test_an_unbelieved_clock_is_looked_at_once_a_second_not_per_sample() -> None:
    looks, mono = [0], [0.0]

    def synced() -> bool:
        looks[0] += 1
        return False

    wall = Wall()
    wall.fixed = datetime(2019, 3, 1, tzinfo=UTC)
    guard = ClockGuard(None, synced=synced, wall=wall, monotonic=lambda: mono[0])
    for _ in range(1000):
        assert not guard.check()
    assert looks[0] == 1
    mono[0] += 1.5
    assert not guard.check()
    assert looks[0] == 2


def test_ntp_saying_synchronised_is_believed_even_before_the_stored_floor() -> None:
    wall = Wall()
    guard = ClockGuard(datetime.now(UTC) + timedelta(days=400), synced=lambda: True, wall=wall)
    assert guard.check()
    assert ClockGuard(None, synced=lambda: None, wall=wall).floor == RELEASE_FLOOR


def test_steps_against_the_monotonic_clock_are_found_and_slow_ticks_are_not() -> None:
    wall, mono = Wall(), [100.0]
    wall.fixed = datetime(2027, 1, 1, tzinfo=UTC)
    guard = ClockGuard(None, synced=lambda: True, wall=wall, monotonic=lambda: mono[0])
    assert guard.check()
    assert guard.step() is None
    mono[0] += 30.0  # a very late tick: both clocks moved alike
    wall.fixed += timedelta(seconds=30)
    assert guard.step() is None
    mono[0] += 1.0
    wall.fixed += timedelta(hours=2, seconds=1)
    stepped = guard.step()
    assert stepped is not None and (stepped[1] - stepped[0]).total_seconds() == 7200
    mono[0] += 1.0
    wall.fixed -= timedelta(seconds=CLOCK_STEP_S * 3)
    assert guard.step() is not None, "a step back is found too"


async def test_a_boot_with_an_old_clock_stamps_nothing_until_it_is_set(tmp_path: Path) -> None:
    wall = Wall()
    wall.fixed = datetime(2019, 3, 1, tzinfo=UTC)  # no RTC: the kernel's idea of time
    synced = [False]
    guard = ClockGuard(None, synced=lambda: synced[0], wall=wall)
    settings = config.loads(offline_text(tmp_path, SIM_FAST))
    gateway = Gateway(settings, outputs=lambda _g: (), clock=guard)
    async with serving(gateway):
        await until(lambda: gateway.samples_held >= 20, 20, "samples from the sim")
        assert "waiting for the system clock" in gateway.status_line()
        with pytest.raises(CommandError) as refused:
            await gateway.execute(Command("main", "debiting_stop", "c1"))
        assert refused.value.code == "clock_not_set"
        gateway.flush()
        assert stored_times(gateway.store.path) == {
            "events": [],
            "profile": [],
            "billing": [],
            "registers": [],
        }
        # NTP answers.
        wall.fixed = None
        synced[0] = True
        synced_at = datetime.now(UTC)
        await until(lambda: "1-0:1.8.0" in gateway.engines["main"].registers, 20, "registers")
        await until(lambda: stored_times(gateway.store.path)["registers"], 20, "a flush")
        await gateway.execute(Command("main", "debiting_stop", "c2"))
        assert "waiting for the system clock" not in gateway.status_line()
    times = stored_times(gateway.store.path)
    assert times["billing"], "the debiting stop on command was stored"
    floor = synced_at.strftime("%Y-%m-%dT%H:%M:%S")
    for kind, stamps in times.items():
        early = [t for t in stamps if t < floor]
        assert not early, f"{kind} stamped before the clock was set: {early[:3]}"


async def test_a_clock_step_is_a_clock_adjusted_event_with_the_interval_flagged(
    tmp_path: Path,
) -> None:
    wall = Wall()
    guard = ClockGuard(None, synced=lambda: True, wall=wall)
    settings = config.loads(offline_text(tmp_path, SIM))
    gateway = Gateway(settings, outputs=lambda _g: (), clock=guard)
    async with serving(gateway):
        engine = gateway.engines["main"]
        await until(lambda: "1-0:1.8.0" in engine.registers, 20, "registers")
        before = Decimal(str(engine.registers["1-0:1.8.0"].value))
        wall.offset = timedelta(hours=3)  # NTP steps the clock forward
        await until(
            lambda: engine.state.profile_flags & ProfileFlag.CLOCK_ADJUSTED, 10, "the step seen"
        )
        wall.offset = timedelta(0)  # and back again
        await until(
            lambda: len(gateway.store.events("main", kind="clock_adjusted")) >= 2,
            10,
            "both steps logged",
        )
        after = Decimal(str(engine.registers["1-0:1.8.0"].value))
    assert after >= before
    details = clock_adjusted_details(gateway.store.path)
    assert any("+10800 s" in d for d in details), details
    assert any("-10800 s" in d for d in details), details


def clock_adjusted_details(db: Path) -> list[str]:
    with on_disk(db) as con:
        return [
            r[0] for r in con.execute("SELECT detail FROM events WHERE kind = 'clock_adjusted'")
        ]


def faketime_library() -> Path:
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    assert found, "libfaketime is missing: `make test` installs Debian's faketime package"
    return found[0]


@pytest.mark.slow
def test_a_real_process_booted_with_a_2019_clock_waits_for_ntp_then_logs_a_step(
    tmp_path: Path,
) -> None:
    """The whole gateway under libfaketime: its wall clock reads 2019 (no RTC) until "NTP" sets
    it (the time file rewritten), then is stepped forward two hours. Monotonic time stays real."""
    clock_file = tmp_path / "faketime"
    clock_file.write_text("@2019-03-01 12:00:00\n")
    http = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\npersist_interval_s = 0.3\n'
        f"[mqtt]\nenabled = false\n[http]\nport = {http}\n[zeroconf]\nenabled = false\n" + SIM_FAST
    )
    env = {
        "LD_PRELOAD": str(faketime_library()),
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_CACHE_DURATION": "1",
    }
    db = tmp_path / "data" / "gateway.db"
    log = tmp_path / "gateway.log"
    with gateway_process(config, log, env=env) as started:
        wait_for_port(http, 30)
        wait_for_log(log, "waiting for the system clock to be set", 30)
        time.sleep(2.0)  # the sim has sent dozens of samples by now
        assert "meter_gateway_clock_believed 0" in metrics(http)
        assert any("waiting for the system clock" in s for s in started.notify.statuses())
        assert stored_times(db) == {"events": [], "profile": [], "billing": [], "registers": []}
        synced_at = datetime.now(UTC)
        clock_file.write_text("+0\n")  # NTP answers: the real time
        wait_for_log(log, "system clock believed from", 30)
        deadline = time.monotonic() + 30
        while not stored_times(db)["registers"]:
            assert time.monotonic() < deadline, "registers were never stored after the sync"
            time.sleep(0.2)
        clock_file.write_text("+2h\n")  # a later step
        wait_for_log(log, "system clock set by +7200 s", 30)
        deadline = time.monotonic() + 30
        while not clock_adjusted_details(db):
            assert time.monotonic() < deadline, "the step was not logged as an event"
            time.sleep(0.2)
    floor = (synced_at - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    # A profile interval is named by its clock-aligned start: the first one after the sync is
    # partial and may start up to one period (at most 60 min) before it.
    period_floor = (synced_at - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    for kind, stamps in stored_times(db).items():
        early = [t for t in stamps if t < (period_floor if kind == "profile" else floor)]
        assert not early, f"{kind} stamped before the clock was set: {early[:3]}"
    assert "Traceback" not in log.read_text()


def metrics(http: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10) as reply:
        text: str = reply.read().decode()
    return text
