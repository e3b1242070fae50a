"""Past one Pi: raw telegrams through receivers -> mosquitto -> 1, 2, 4 decode workers.

Run: ``.venv/bin/python -m bench.cluster [--frames N] [--workers 1 2 4] [--repeat 3]``

One fresh mosquitto on loopback. The receivers' side is a publisher sending the frames as
receiver-mode gateways do (gateway/cluster/wire.py: binary header + telegram, QoS 1) on three
receiver topics; the workers are real ``meter-gateway run`` processes with a ``decode_worker``
module in one shared subscription group, holding the keys of 50 emulated Kamstrup meters
(AES-CTR full frames, modules/wmbus/emulator.py). A subscriber process counts the decoded
samples on ``<base>/samples/#``. Each run: frames per second from the first frame published to
the last sample received, and the workers' CPU time per frame (/proc/PID/stat). A baseline
measures the broker alone: the same frames to a plain subscriber (no decoding).

The figures say where the first bottleneck is; ``paper_estimate`` scales them to 10,000 meters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gateway.cluster.wire import raw_payload, raw_topic
from gateway.model import RawFrame
from modules.wmbus.emulator import DEMO_KEY, OmnipowerTransmitter

BASE = "bench"
METERS = 50
RECEIVERS = 3
GATEWAY = Path(sys.executable).with_name("meter-gateway")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# A bench run that does not finish in this long is reported as stuck, not waited for.
RUN_TIMEOUT_S = 120.0

COUNTER = """
import sys, time, paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
want, topic, seen = int(sys.argv[2]), sys.argv[3], 0
def on_message(client, userdata, message):
    global seen
    seen += 1
    if seen >= want:
        print(time.monotonic(), flush=True)
        client.disconnect()
def on_connect(client, userdata, flags, rc, props):
    client.subscribe([(topic, 1)])
def on_subscribe(*args):
    print("ready", flush=True)
client = paho.Client(CallbackAPIVersion.VERSION2)
client.on_message, client.on_connect, client.on_subscribe = on_message, on_connect, on_subscribe
client.connect("127.0.0.1", int(sys.argv[1]))
client.loop_forever()
"""


def frames(count: int) -> list[tuple[str, bytes]]:
    """``count`` raw frames (topic, payload) from METERS meters spread over the receivers."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    meters = [
        OmnipowerTransmitter(meter_id=f"{80000000 + n}", seed=n, full_every=1, start=start)
        for n in range(METERS)
    ]
    out = []
    for n in range(count):
        telegram = meters[n % METERS].telegram(16.0)
        frame = RawFrame("radio", "wmbus", telegram, datetime.now(UTC), -70.0)
        topic = raw_topic(BASE, "wmbus", f"rx{n % RECEIVERS}", "radio")
        out.append((topic, raw_payload(frame)))
    return out


@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[int]:
    """A fresh mosquitto on a free loopback port, no limit on queued messages."""
    from tests.support.processes import free_port, wait_for_port  # noqa: PLC0415

    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    wait_for_port(port)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(10)


def worker_config(workdir: Path, name: str, port: int) -> Path:
    meters = "".join(
        f'\n[[modules.meters]]\nid = "{80000000 + n}"\nkey = "{DEMO_KEY.hex()}"\n'
        for n in range(METERS)
    )
    path = workdir / f"{name}.toml"
    path.write_text(
        f"""
[gateway]
name = "{name}"
data_dir = "{workdir / name}"

[mqtt]
host = "127.0.0.1"
port = {port}
base_topic = "{BASE}"
discovery = false

[http]
enabled = false

[zeroconf]
enabled = false

[[modules]]
type = "decode_worker"
name = "decoder"
group = "bench"
max_inflight = 256
{meters}"""
    )
    return path


def _subscribed(workdir: Path) -> int:
    """Workers that say their shared subscription is in place (they log it after SUBACK)."""
    return sum(
        "decoding wmbus frames in group" in path.read_text(errors="replace")
        for path in workdir.glob("w*.log")
    )


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def publish(port: int, batch: list[tuple[str, bytes]]) -> float:
    """Publish every frame at QoS 1 (as receivers' outboxes do); the monotonic start time."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-receivers")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.monotonic()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in batch]
    for info in infos:
        info.wait_for_publish(RUN_TIMEOUT_S)
    client.disconnect()
    client.loop_stop()
    return started


def run(workdir: Path, batch: list[tuple[str, bytes]], workers: int) -> dict[str, Any]:
    """Frames per second through ``workers`` decode workers (0: the broker alone)."""
    with broker(workdir) as port:
        topic = f"{BASE}/samples/#" if workers else f"{BASE}/raw/#"
        counter = subprocess.Popen(
            [sys.executable, "-c", COUNTER, str(port), str(len(batch)), topic],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert counter.stdout is not None
        processes = []
        try:
            if counter.stdout.readline().strip() != "ready":
                raise RuntimeError("the counting subscriber did not start")
            for n in range(workers):
                config = worker_config(workdir, f"w{workers}-{n}", port)
                with (workdir / f"w{workers}-{n}.log").open("ab") as out:
                    processes.append(
                        subprocess.Popen(
                            [str(GATEWAY), "run", "--config", str(config)], stdout=out, stderr=out
                        )
                    )
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while _subscribed(workdir) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not subscribe")
                time.sleep(0.05)
            cpu_before = sum(cpu_s(p.pid) for p in processes)
            started = threading_publish(port, batch)
            line = counter.stdout.readline().strip()
            if not line:
                raise RuntimeError("the counting subscriber ended early")
            seconds = float(line) - started
            cpu = sum(cpu_s(p.pid) for p in processes) - cpu_before
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
            if counter.poll() is None:
                counter.kill()
            counter.wait()
            counter.stdout.close()
    return {
        "workers": workers,
        "frames": len(batch),
        "seconds": round(seconds, 3),
        "frames_per_s": round(len(batch) / seconds),
        "worker_cpu_us_per_frame": round(cpu / len(batch) * 1e6) if workers else None,
    }


def threading_publish(port: int, batch: list[tuple[str, bytes]]) -> float:
    """``publish`` in a thread, so paho's network loop and ours do not share a stack."""
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(publish(port, batch)))
    thread.start()
    thread.join(RUN_TIMEOUT_S)
    if not result:
        raise RuntimeError("publishing did not finish")
    return result[0]


def paper_estimate(results: list[dict[str, Any]], engine_us_per_sample: float) -> dict[str, Any]:
    """10,000 meters, each sending every 16 s (Omnipower C1: the busiest common case), each
    telegram heard by 2 receivers on average: the load on each stage, and how many meters
    each stage could take before it is full (the smallest is the first bottleneck).

    Broker: each frame crosses it twice (in, out) and so does its sample; its capacity is the
    baseline run's messages per second (frames in + out). Workers: CPU per frame measured, per
    core; they scale by adding workers. Engine: one gateway's single event loop ingests each
    telegram once (``engine_us_per_sample``) and receives every copy; receiving a copy is
    taken at the worker's whole per-frame cost (an upper bound: it also decodes and publishes).
    """
    meters, interval_s, heard_by = 10_000, 16.0, 2.0
    telegrams_s = meters / interval_s
    frames_s = telegrams_s * heard_by
    broker_alone = next(r for r in results if r["workers"] == 0)
    one = next(r for r in results if r["workers"] == 1)
    worker_us = one["worker_cpu_us_per_frame"]
    broker_capacity = broker_alone["frames_per_s"] * 2
    per_meter = {
        "broker_messages_per_s": 4 * heard_by / interval_s,
        "worker_core": worker_us * 1e-6 * heard_by / interval_s,
        "engine_core": (engine_us_per_sample + worker_us * heard_by) * 1e-6 / interval_s,
    }
    full_at = {
        "broker": round(broker_capacity / per_meter["broker_messages_per_s"]),
        "one_worker_core": round(1 / per_meter["worker_core"]),
        "one_engine_gateway": round(1 / per_meter["engine_core"]),
    }
    return {
        "meters": meters,
        "telegram_interval_s": interval_s,
        "receivers_per_telegram": heard_by,
        "telegrams_per_s": round(telegrams_s),
        "raw_frames_per_s": round(frames_s),
        "broker_messages_per_s": round(meters * per_meter["broker_messages_per_s"]),
        "broker_capacity_messages_per_s": round(broker_capacity),
        "worker_cores": round(meters * per_meter["worker_core"], 2),
        "engine_cores": round(meters * per_meter["engine_core"], 2),
        "meters_at_saturation": full_at,
        "first_bottleneck": min(full_at, key=lambda stage: full_at[stage]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3, help="runs per worker count; best kept")
    # bench/RESULTS.md "On a Raspberry Pi": the end-to-end fit, 123 us per sample plus 129 us
    # per meter and second, both taken per telegram (a meter publishes after each sample).
    parser.add_argument("--engine-us", type=float, default=252.0)
    args = parser.parse_args(argv)
    batch = frames(args.frames)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        for workers in (0, *args.workers):
            runs = []
            for attempt in range(args.repeat):
                workdir = Path(scratch) / f"run{workers}-{attempt}"
                workdir.mkdir()
                runs.append(run(workdir, batch, workers))
                print(json.dumps(runs[-1]), flush=True)
            # The machine is shared: the fastest run is the one least disturbed.
            results.append(max(runs, key=lambda r: r["frames_per_s"]))
    one = next(r for r in results if r["workers"] == 1)
    for result in results:
        if result["workers"]:
            result["scaling"] = round(result["frames_per_s"] / one["frames_per_s"], 2)
    estimate = paper_estimate(results, args.engine_us)
    print(json.dumps({"runs": results, "estimate_10000_meters": estimate}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
