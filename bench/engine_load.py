"""Engine load: samples per second on one core for a 1 Hz three-phase meter with every feature
on, and the bytes a day of that meter writes to the SD card.

Run: ``.venv/bin/python -m bench.engine_load [--hours H] [--meters N] [--checkpoint-s S]
[--json OUT]``

The meter is the simulated 382L (per-phase U/I/P, frequency, PF, four energy registers); the
engine runs tariffs (a two-season schedule), 15-min demand, a 15-min four-channel load profile,
the 14-register analysis logger, supply monitors, the breaker and prepayment. Bytes written are
the process's own storage writes (/proc/self/io write_bytes) while the day runs through the
real store with checkpoints every ``checkpoint_interval_s`` of meter time (the default, or
``--checkpoint-s``), extrapolated to a day. Live values leave from memory and cost no writes.
Meter time runs thousands of times faster than the wall clock here, so after each checkpoint
(and spill) the bench calls sync(): the kernel writes dirty pages back within 30 s, checkpoints
are minutes apart, and without it a page dirtied again before its write-back would be counted
once instead of every time (the count before issue 20, 209.9 MB/day, was taken without it).
With the broker away, the MQTT outbox spills one state message per meter and second in batches
of ``outbox_spill_after_s``: its bytes written are set against the payload bytes waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.peers import SCRATCH
from gateway import config
from gateway.meters import Meters
from gateway.model import Sample
from gateway.mqtt.outbox import Outbox
from gateway.mqtt.payloads import state_payload
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


def _engine(hours: float) -> dict[str, Any]:
    """Drive the engine through ``hours`` of a 1 Hz meter; the samples for the store runs."""
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
        store.close()
    return {
        "samples": seconds,
        "engine_samples_per_s": seconds / engine_cpu,
        "engine_cpu_us_per_sample": engine_cpu / seconds * 1e6,
        "meters_per_core_at_1hz": seconds / engine_cpu,
        "samples_list": samples,
    }


def engine_rate(hours: float) -> dict[str, Any]:
    """The engine's figures alone (for the compiled build, whose store runs are not needed)."""
    figures = _engine(hours)
    del figures["samples_list"]
    return figures


def disk(samples: list[Sample], hours: float, meters_n: int, checkpoint_s: float) -> dict[str, Any]:
    """Bytes a day written by ``meters_n`` such meters, checkpointed every ``checkpoint_s``."""
    with tempfile.TemporaryDirectory(prefix="bench-disk-", dir=SCRATCH) as folder:
        ids = [f"m{n}" for n in range(meters_n)]
        text = CONFIG.format(data=folder)
        body = text[text.index("[[meters]]") :]
        head = text[: text.index("[[meters]]")]
        settings = config.loads(
            head + "".join(body.replace('id = "main"', f'id = "{i}"') for i in ids)
        )
        store = Store(Path(folder) / "gateway.db")
        meters = Meters(settings, store)
        os.sync()
        written_before = _written_bytes()
        last = samples[0].at
        for sample in samples:
            for meter_id in ids:
                update = meters.engines[meter_id].ingest(
                    Sample(meter_id, sample.source, sample.at, sample.readings)
                )
                events = meters.note(update)
                if events:
                    store.add_events(events)
                if meters.due_checkpoint(update):
                    meters.flush(())
                    os.sync()
            if (sample.at - last).total_seconds() >= checkpoint_s:
                meters.flush(())
                os.sync()
                last = sample.at
        meters.flush(())
        written = _written_bytes() - written_before
        store.close()
    return {"meters": meters_n, "checkpoint_s": checkpoint_s, "bytes_per_day": written * 24 / hours}


def outage(samples: list[Sample], spill_after_s: float) -> dict[str, Any]:
    """The broker away for the whole run: state messages spilled in batches."""
    with tempfile.TemporaryDirectory(prefix="bench-outage-", dir=SCRATCH) as folder:
        settings = config.loads(CONFIG.format(data=folder))
        store = Store(Path(folder) / "gateway.db")
        meters = Meters(settings, store)
        outbox = Outbox(store, max_bytes=10**9)
        engine = meters.engines["main"]
        payload_bytes = 0
        os.sync()
        written_before = _written_bytes()
        for seq, sample in enumerate(samples, 1):
            engine.ingest(sample)
            payload = state_payload("main", meters.published("main"), seq)
            payload_bytes += len(payload)
            outbox.append("meter-gateway/main/state", payload, retain=True)
            if seq % int(spill_after_s) == 0:
                outbox.spill()
                os.sync()
        outbox.spill()
        written = _written_bytes() - written_before
        depth = outbox.depth
        store.close()
    return {
        "messages": depth,
        "payload_bytes": payload_bytes,
        "written_bytes": written,
        "ratio": written / payload_bytes,
    }


def run(
    hours: float,
    meters: list[int] | None = None,
    checkpoints: list[float] | None = None,
) -> dict[str, Any]:
    """Engine rate, bytes a day per meter count and checkpoint interval, the outage ratio."""
    figures = _engine(hours)
    samples = figures.pop("samples_list")
    rows = [
        disk(samples, hours, count, checkpoint_s)
        for checkpoint_s in checkpoints or [config.GatewaySection().checkpoint_interval_s]
        for count in meters or [1]
    ]
    figures["disk"] = rows
    figures["bytes_written_per_day"] = rows[0]["bytes_per_day"]
    figures["outage"] = outage(samples, config.MqttSection().outbox_spill_after_s)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0, help="simulated hours (default 2)")
    parser.add_argument("--meters", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--checkpoint-s",
        type=float,
        nargs="+",
        default=[config.GatewaySection().checkpoint_interval_s, 5.0],
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    figures = run(args.hours, args.meters, args.checkpoint_s)
    print(
        f"engine: {figures['engine_samples_per_s']:,.0f} samples/s on one core "
        f"({figures['engine_cpu_us_per_sample']:.0f} µs each)"
    )
    for row in figures["disk"]:
        print(
            f"store:  {row['bytes_per_day'] / 1e6:,.2f} MB written per day, {row['meters']}"
            f" meter(s) at 1 Hz, checkpoint every {row['checkpoint_s']:g} s"
        )
    away = figures["outage"]
    print(
        f"broker away: {away['written_bytes'] / 1e6:,.2f} MB written for"
        f" {away['payload_bytes'] / 1e6:,.2f} MB of state payloads waiting"
        f" ({away['ratio']:.2f}x, {away['messages']} messages)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
