"""The supervisor: failing modules never stop the others; reload touches only what changed."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import warnings
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway import config, registry
from gateway.model import Sample
from modules.sim.adapter import SimConfig
from tests.support.gateway import offline_text, running, until


@pytest.fixture(autouse=True)
def test_adapters() -> Iterator[None]:
    registry.ADAPTERS["flaky"] = "tests.support.adapters:FlakyAdapter"
    registry.ADAPTERS["crash"] = "tests.support.adapters:CrashAdapter"
    yield
    del registry.ADAPTERS["flaky"], registry.ADAPTERS["crash"]


def write_config(path: Path, data_dir: Path, modules: str) -> Path:
    path.write_text(
        offline_text(data_dir, '[[meters]]\nid = "a"\n[[meters]]\nid = "b"\n' + modules)
    )
    return path


SIM = (
    '[[modules]]\ntype = "sim"\nname = "{name}"\nmeter = "{meter}"\n'
    "speed = {speed}\ninterval_s = 0.05\n"
)


async def test_a_failing_and_a_crashing_module_do_not_stop_the_others(tmp_path: Path) -> None:
    modules = (
        SIM.format(name="sim1", meter="a", speed=1)
        + '[[modules]]\ntype = "flaky"\nname = "flaky1"\nmeter = "b"\ngood_samples = 2\n'
        + '[[modules]]\ntype = "crash"\nname = "crash1"\n'
    )
    settings = config.load(write_config(tmp_path / "c.toml", tmp_path, modules))
    async with running(settings) as gateway:
        await until(lambda: gateway.health["flaky1"].restarts >= 2)
        await until(lambda: gateway.health["crash1"].restarts >= 1)
        frames = gateway.health["sim1"].frames_ok
        await until(lambda: gateway.health["sim1"].frames_ok > frames + 5)
        assert gateway.health["sim1"].state == "running"
        assert gateway.health["sim1"].restarts == 0
        assert "stick went away" in (gateway.health["flaky1"].last_error or "")
        assert "ZeroDivisionError" in (gateway.health["crash1"].last_error or "")
    kinds = [
        event.kind for _, event in gateway.store.__class__(tmp_path / "gateway.db").events("b")
    ]
    assert "communication_lost" in kinds and "communication_restored" in kinds


async def test_sighup_restarts_only_the_changed_module(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "c.toml",
        tmp_path,
        SIM.format(name="sim1", meter="a", speed=1) + SIM.format(name="sim2", meter="b", speed=1),
    )
    async with running(config.load(path), config_path=path) as gateway:
        await until(lambda: all(h.frames_ok > 2 for h in gateway.health.values()))
        sim1_health, sim2_health = gateway.health["sim1"], gateway.health["sim2"]
        sim1_task = gateway.modules.task("sim1")
        write_config(
            path,
            tmp_path,
            SIM.format(name="sim1", meter="a", speed=1)
            + SIM.format(name="sim2", meter="b", speed=5),
        )
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: gateway.health.get("sim2") is not sim2_health)
        await until(lambda: gateway.health["sim2"].frames_ok > 2)
        assert gateway.health["sim1"] is sim1_health
        assert gateway.modules.task("sim1") is sim1_task and not sim1_task.done()
        reloaded = gateway.settings.modules[1]
        assert isinstance(reloaded, SimConfig) and reloaded.speed == 5
        assert gateway.engines["b"].registers, "the meter keeps its state across the restart"


async def test_a_reload_lets_go_of_the_engine_it_replaced(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", tmp_path, SIM.format(name="sim1", meter="a", speed=1))
    async with running(config.load(path), config_path=path) as gateway:
        await until(lambda: gateway.health["sim1"].frames_ok > 1)
        replaced = weakref.ref(gateway.engines["b"])
        # Start-up state is kept out of the collector's walks; what a reload replaces (an
        # engine is a cycle of its parts) must still be freed.
        path.write_text(path.read_text().replace('id = "b"', 'id = "b"\nname = "Garage"'))
        gateway.request_reload()
        await until(lambda: gateway.engines["b"] is not replaced())
        await until(lambda: _collect() >= 0 and replaced() is None, what="old engine freed")


def _collect() -> int:
    """A full collection that also finalises whatever earlier tests in this process left for
    the collector (an accepted socket they never closed, say): its ResourceWarning would be
    raised here, in a test about engines, and name nothing of this test's own."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        return gc.collect()


async def test_a_bad_config_on_reload_keeps_the_running_one(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", tmp_path, SIM.format(name="sim1", meter="a", speed=1))
    async with running(config.load(path), config_path=path) as gateway:
        await until(lambda: gateway.health["sim1"].frames_ok > 1)
        path.write_text(path.read_text() + "bogus = 1\n")
        gateway.request_reload()
        await asyncio.sleep(0.3)
        assert gateway.health["sim1"].state == "running"
        assert gateway.health["sim1"].restarts == 0


async def test_ready_reports_the_modules_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = offline_text(
        tmp_path,
        '[[meters]]\nid = "a"\n[[meters]]\nid = "b"\n'
        '[[modules]]\ntype = "sim"\nname = "sim-a"\nmeter = "a"\n'
        '[[modules]]\ntype = "sim"\nname = "sim-b"\nmeter = "b"\n',
    )
    with caplog.at_level("INFO", logger="gateway.app"):
        async with running(text) as gateway:
            assert gateway.status_line().startswith("2/2 modules running")
    started = [r.getMessage() for r in caplog.records if " started: " in r.getMessage()]
    assert started and "2/2 modules running" in started[0]


async def test_a_module_failing_at_every_start_logs_once_a_minute_not_every_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs wear the SD card too: a module that crashes at every start gets its traceback and
    its restart line once, then nothing more at the default level within the interval."""
    modules = '[[modules]]\ntype = "crash"\nname = "crash1"\n'
    settings = config.load(write_config(tmp_path / "c.toml", tmp_path, modules))
    with caplog.at_level("DEBUG", logger="gateway.supervision"):
        async with running(settings) as gateway:
            await until(lambda: gateway.health["crash1"].restarts >= 3, 60)
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    crashed = [r for r in shown if "crash1 crashed" in r.getMessage()]
    stopped = [r for r in shown if "crash1 stopped" in r.getMessage()]
    assert len(crashed) == 1 and crashed[0].exc_info is not None
    assert len(stopped) == 1
    assert [r for r in caplog.records if "crash1 stopped" in r.getMessage()][1:], (
        "the later attempts are still there at debug level"
    )


async def test_a_reload_while_the_store_cannot_be_written_is_applied_and_said(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path / "c.toml", tmp_path, SIM.format(name="sim1", meter="a", speed=1))
    async with running(config.load(path), config_path=path) as gateway:
        await until(lambda: gateway.health["sim1"].frames_ok > 1)
        # SQLite refuses every write from here on, as on a file system gone read-only.
        gateway.store.connection.execute("PRAGMA query_only = 1")
        write_config(path, tmp_path, SIM.format(name="sim1", meter="a", speed=5))
        gateway.request_reload()
        await until(lambda: getattr(gateway.settings.modules[0], "speed", None) == 5, what="reload")
        frames = gateway.health["sim1"].frames_ok
        await until(lambda: gateway.health["sim1"].frames_ok > frames + 2, what="serving on")
        assert gateway.store_problem is not None, "the reload's checkpoint failed: said"
        gateway.store.connection.execute("PRAGMA query_only = 0")
        await until(lambda: gateway.store_problem is None, what="written again")


async def test_samples_for_an_unknown_meter_are_refused_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = offline_text(tmp_path, '[[meters]]\nid = "a"\n')
    at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    with caplog.at_level("INFO", logger="gateway.app"):
        async with running(text) as gateway:
            for second in range(3):
                sample = Sample("z", "feed", at + timedelta(seconds=second), ())
                gateway.submit("feed", sample)
            assert "z" not in gateway.engines
    said = [r for r in caplog.records if "unknown meter 'z'" in r.getMessage()]
    assert len(said) == 1, "logs wear the SD card: once, not once a sample"
