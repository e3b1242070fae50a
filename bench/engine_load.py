"""Engine load: samples per second on one core for a 1 Hz three-phase meter with every feature
on, and the bytes a day of that meter writes to the SD card.

Run: ``.venv/bin/python -m bench.engine_load [--hours H] [--json OUT]``

The meter is the simulated 382L (per-phase U/I/P, frequency, PF, four energy registers); the
engine runs tariffs (a two-season schedule), 15-min demand, a 15-min four-channel load profile,
the 14-register analysis logger, supply monitors, the breaker and prepayment. Bytes written are
the process's own storage writes (/proc/self/io write_bytes) while the day runs through the
real store (WAL, synchronous=FULL) with the default 10 s flush interval.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.peers import SCRATCH
from gateway import config
from gateway.meters import Meters
from gateway.model import Sample
from gateway.store import Store
from modules.sim.adapter import _readings
from modules.sim.household import Household

CONFIG = """
[gateway]
timezone = "Europe/Copenhagen"
data_dir = "{data}"
[[meters]]
id = "main"
[meters.tariff]
holidays = ["12-25"]
[[meters.tariff.seasons]]
start = "10-01"
weekday = [{{ at = "00:00", tariff = 1 }}, {{ at = "17:00", tariff = 2 }},
           {{ at = "21:00", tariff = 1 }}]
[[meters.tariff.seasons]]
start = "04-01"
weekday = [{{ at = "00:00", tariff = 1 }}]
[meters.demand]
power_threshold_w = 9000.0
[meters.breaker]
enabled = true
[meters.breaker.smart_disconnect]
enabled = true
power_w = 30000.0
[meters.prepayment]
enabled = true
"""


def _written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def run(hours: float) -> dict[str, Any]:
    """Drive the engine and the store through ``hours`` of a 1 Hz meter."""
    with tempfile.TemporaryDirectory(prefix="bench-engine-", dir=SCRATCH) as folder:
        settings = config.loads(CONFIG.format(data=folder))
        store = Store(Path(folder) / "gateway.db")
        meters = Meters(settings, store)
        engine = meters.engines["main"]
        house = Household(pv_kwp=5.0)
        zone = settings.zone
        start = datetime(2026, 1, 14, tzinfo=UTC)
        seconds = int(hours * 3600)
        totals = [0.0, 0.0, 0.0, 0.0]
        samples = []
        for second in range(seconds):
            at = start + timedelta(seconds=second)
            snap = house.at(at.astimezone(zone))
            totals[0] += max(snap.power_w, 0) / 3600
            totals[1] += max(-snap.power_w, 0) / 3600
            totals[2] += max(snap.reactive_var, 0) / 3600
            totals[3] += max(-snap.reactive_var, 0) / 3600
            samples.append(Sample("main", "bench", at, _readings(snap, totals)))
        begin_cpu = time.process_time()
        for sample in samples:
            engine.ingest(sample)
        engine_cpu = time.process_time() - begin_cpu
        # The same day again through the store, flushing every 10 s as the gateway does.
        store.close()
        Path(folder, "gateway.db").unlink()
        for suffix in ("-wal", "-shm"):
            Path(folder, "gateway.db" + suffix).unlink(missing_ok=True)
        store = Store(Path(folder) / "gateway.db")
        meters = Meters(settings, store)
        engine = meters.engines["main"]
        written_before = _written_bytes()
        for index, sample in enumerate(samples):
            for event in meters.note(engine.ingest(sample)):
                store.add_events([event])
            if index % 10 == 9:
                meters.flush(())
        meters.flush(())
        written = _written_bytes() - written_before
        store.close()
    per_day = written * 24 / hours
    return {
        "samples": seconds,
        "engine_samples_per_s": seconds / engine_cpu,
        "engine_cpu_us_per_sample": engine_cpu / seconds * 1e6,
        "bytes_written_per_day": per_day,
        "meters_per_core_at_1hz": seconds / engine_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0, help="simulated hours (default 2)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    figures = run(args.hours)
    print(
        f"engine: {figures['engine_samples_per_s']:,.0f} samples/s on one core "
        f"({figures['engine_cpu_us_per_sample']:.0f} µs each)"
    )
    print(
        f"store:  {figures['bytes_written_per_day'] / 1e6:,.1f} MB written per day per meter "
        "(1 Hz, 10 s flushes)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
