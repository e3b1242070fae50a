"""Disk faults: the data directory full, or deleted while the gateway runs.

The gateway keeps serving live values, says what is wrong (log line, systemd STATUS), loses
nothing it had committed, and carries on writing by itself once the disk can take writes again.
A full disk is a small tmpfs of the test's own (mounting needs root, as CI runs). A file system
turning read-only under open files is not reproducible here (Linux refuses `remount,ro` while
files are open for writing); the gateway treats it like a full disk, by the same code path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from tests.faults.harness import (
    bounded,
    cycles,
    figure,
    gateway_process,
    stored_totals,
    wait_for_log,
)
from tests.support.configs import sim_gateway_toml
from tests.support.processes import free_port, wait_for_port

pytestmark = [pytest.mark.slow, bounded(240)]

# The flush loop notices within one persist interval; a busy machine gets a generous margin.
NOTICE_S = 30.0


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a small tmpfs for the disk needs root (CI runs as root)"
)


@contextmanager
def small_disk(mountpoint: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` at ``mountpoint``, unmounted afterwards."""
    mountpoint.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(mountpoint)],
        check=True,
        capture_output=True,
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False, capture_output=True)


def fill(disk: Path) -> Path:
    """Write zeros until the disk says ENOSPC; returns the file to delete to free it."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError:
            pass
        # Fill the last partial block too, one byte at a time would take long: 4 KiB steps.
        try:
            while True:
                out.write(chunk[:4096])
        except OSError:
            pass
    return filler


def live_power(http: int) -> str:
    url = f"http://127.0.0.1:{http}/api/v1/meters/main/registers"
    with urllib.request.urlopen(url, timeout=10) as reply:
        registers = json.load(reply)["registers"]
    return json.dumps(registers["1-0:1.7.0"]["value"]) + str(registers["1-0:1.7.0"].get("at"))


def metrics(http: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10) as reply:
        text: str = reply.read().decode()
    return text


def assert_live(http: int) -> None:
    """Instantaneous values keep moving (they come from memory, never from the disk)."""
    first = live_power(http)
    deadline = time.monotonic() + 20
    while live_power(http) == first:
        assert time.monotonic() < deadline, "live values stopped while the disk was unwritable"
        time.sleep(0.2)


def grows_past(db: Path, before: dict[str, Decimal], timeout_s: float) -> dict[str, Decimal]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            now = stored_totals(db) if db.exists() else {}
        except sqlite3.OperationalError:
            now = {}  # created but not yet migrated
        if now.get("1-0:1.8.0", Decimal(-1)) > before["1-0:1.8.0"]:
            return now
        assert time.monotonic() < deadline, "registers were not written again"
        time.sleep(0.2)


def start(data: Path, tmp_path: Path) -> tuple[Path, int]:
    http = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        # Fast enough that profile intervals are filed every few seconds: the store's small WAL
        # is written over in place, so a full disk is only felt when the database must grow. A
        # lone meter's row carries its intervals until it holds most of a page (gateway/store.py,
        # ROW_BYTES_MAX), so five-minute intervals fill it in a few seconds of this sim.
        sim_gateway_toml(
            data,
            persist_interval_s=0.3,
            http_port=http,
            speed=3600.0,
            interval_s=0.1,
            more="[meters.profile]\ninterval_min = 5\n[meters.analysis]\ninterval_min = 5\n",
        )
    )
    return config, http


@needs_root
def test_a_full_disk_is_said_waited_out_and_nothing_committed_is_lost(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 8192) as disk:
        data = disk / "data"
        config, http = start(data, tmp_path)
        log = tmp_path / "gateway.log"
        db = data / "gateway.db"
        with gateway_process(config, log) as started:
            wait_for_port(http, 30)
            grows_past(db, {"1-0:1.8.0": Decimal(0)}, 30)
            for _ in range(cycles(quick=1, soak=10)):
                mark = log.stat().st_size
                filler = fill(disk)
                wait_for_log(log, "the data disk is full", NOTICE_S, after=mark)
                full_since = time.monotonic()
                started.notify.wait_for("STATUS=", 10, after=len(started.notify.messages))
                assert any("STORE NOT WRITABLE" in s for s in started.notify.statuses())
                before = stored_totals(db)
                assert_live(http)
                assert started.process.poll() is None
                assert "meter_gateway_store_writable 0" in metrics(http)
                mark = log.stat().st_size
                filler.unlink()
                wait_for_log(log, "writable again", NOTICE_S, after=mark)
                after = grows_past(db, before, NOTICE_S)
                assert all(after[code] >= value for code, value in before.items())
                assert "STORE NOT WRITABLE" not in started.notify.statuses()[-1]
                assert "meter_gateway_store_writable 1" in metrics(http)
        assert "Traceback" not in log.read_text()
        assert stored_totals(db)["1-0:1.8.0"] >= after["1-0:1.8.0"]
    figure("disk full: recovered after space returned, s", f"{time.monotonic() - full_since:.1f}")


def test_a_data_directory_deleted_while_running_is_written_back_and_survives_kill_nine(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    config, http = start(data, tmp_path)
    log = tmp_path / "gateway.log"
    db = data / "gateway.db"
    with gateway_process(config, log) as started:
        wait_for_port(http, 30)
        committed = grows_past(db, {"1-0:1.8.0": Decimal(0)}, 30)
        mark = log.stat().st_size
        shutil.rmtree(data)
        wait_for_log(log, "was deleted while the gateway had it open", NOTICE_S, after=mark)
        wait_for_log(log, "written back from the open database", NOTICE_S, after=mark)
        back = grows_past(db, committed, NOTICE_S)
        # Pull the plug at once: what was committed, before and after the delete, is on disk.
        started.process.send_signal(signal.SIGKILL)
        started.process.wait(10)
    survived = stored_totals(db)
    assert all(survived[code] >= value for code, value in back.items())
    assert "Traceback" not in log.read_text()
