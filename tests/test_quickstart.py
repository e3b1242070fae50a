"""The README's first command: `meter-gateway run` with no config shows a live meter at once."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

from gateway.store import registers_in
from tests.support.on_disk import on_disk
from tests.support.processes import GATEWAY

# How long a busy machine may take to start the gateway and store two readings. The README's
# "values move within seconds" is a figure for bench/ (bench.startup), not a timed test.
MOVE_BOUND_S = 60.0
# P+ and P- of the summary line: by day the sim's sun may export, which only P- shows.
POWER_LINE = re.compile(r"meter main: .*1-0:1\.7\.0 ([\d.]+) W, 1-0:2\.7\.0 ([\d.]+) W")


def power(db: Path) -> str | None:
    """P+ and P- as stored (A+ moves by 1 Wh only every ~20 s at a night's base load; by day
    the sim's sun may export, which only P- shows)."""
    if not db.exists():
        return None
    with on_disk(db) as conn:
        try:
            registers = registers_in(conn, "main")
        except sqlite3.OperationalError:  # the file is there, its schema not yet
            return None
    shown = [registers[code].value for code in ("1-0:1.7.0", "1-0:2.7.0") if code in registers]
    return "/".join(map(str, shown)) or None


def test_embedded_default_shows_values_changing(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(GATEWAY), "run"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    stderr = process.stderr
    assert stderr is not None
    log: list[str] = []
    # The log is read as it is written: the summary line comes every 2 s in the warm-up, and
    # the store can move twice before the second one (a test that stopped at two stored
    # values saw one line on a fast machine).
    reader = threading.Thread(target=lambda: log.extend(iter(stderr.readline, "")))
    reader.start()
    try:
        started = time.monotonic()
        stored: set[str] = set()
        while time.monotonic() - started < MOVE_BOUND_S:
            value = power(tmp_path / "var" / "gateway.db")
            if value is not None:
                stored.add(value)
            if len(stored) >= 2 and len(set(POWER_LINE.findall("".join(log)))) >= 2:
                break
            time.sleep(0.2)
        assert len(stored) >= 2, f"the store did not move within {MOVE_BOUND_S} s: {stored}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
        reader.join(15)
        if process.stderr is not None:
            process.stderr.close()
    text = "".join(log)
    assert process.returncode == 0, text
    powers = POWER_LINE.findall(text)
    assert len(set(powers)) >= 2, f"the log did not show the power changing:\n{text}"
