"""MQTT throughput: messages per second through engine -> SQLite outbox -> mosquitto.

Run: ``.venv/bin/python -m bench.mqtt_throughput [--messages N] [--loop asyncio|uvloop|both]``

Scenarios, each against a fresh mosquitto on loopback and a fresh store on disk (WAL,
synchronous=FULL, as in production), with a subscriber process counting what arrives:

- live:    a sample of a three-phase meter (~25 registers) goes through the engine, the flush
           commits registers and appends the state message in one transaction, the bridge
           publishes it with QoS 1 and deletes it after PUBACK. One flush per message is the
           worst case (production flushes every persist_interval_s).
- events:  events through the non-volatile log, one transaction each (one fsync per event).
- backlog: N state messages queued while the broker was away, then drained after connect.

CPU seconds are the gateway process's own (user + system) per 1,000 messages; the broker and
the subscriber run in other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.peers import SCRATCH
from gateway import config
from gateway.app import Gateway
from gateway.model import Event, Reading, Sample, utc_now
from gateway.mqtt.bridge import MqttBridge

# The subscriber has heard everything within this long of the outbox emptying, or never will.
SUBSCRIBER_WAIT_S = 60.0
SUBSCRIBER = """
import sys, paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
want, seen = int(sys.argv[2]), 0
def on_message(client, userdata, message):
    global seen
    seen += 1
    if seen >= want:
        print(seen, flush=True)
        client.disconnect()
def on_connect(client, userdata, flags, rc, props):
    client.subscribe([("bench/+/+/state", 1), ("bench/+/+/event", 1)])  # base/gateway/meter
def on_subscribe(*args):
    print("ready", flush=True)
client = paho.Client(CallbackAPIVersion.VERSION2)
client.on_message, client.on_connect, client.on_subscribe = on_message, on_connect, on_subscribe
client.connect("127.0.0.1", int(sys.argv[1]))
client.loop_forever()
"""


@dataclass
class Result:
    """One scenario's figures."""

    scenario: str
    loop: str
    messages: int
    seconds: float
    cpu_s: float

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds

    @property
    def cpu_per_1000(self) -> float:
        """CPU seconds of the gateway process per 1,000 messages."""
        return self.cpu_s / self.messages * 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _broker(workdir: Path) -> Iterator[int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline:
            raise RuntimeError("mosquitto did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def _subscriber(port: int, count: int) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, str(port), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("subscriber did not start")
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _readings(n: int) -> tuple[Reading, ...]:
    energy = Decimal(1000) + Decimal(n) / 1000
    readings = [
        Reading("1-0:1.8.0", energy, "kWh"),
        Reading("1-0:2.8.0", Decimal("12.345"), "kWh"),
        Reading("1-0:3.8.0", energy / 10, "kvarh"),
        Reading("1-0:4.8.0", Decimal("1.5"), "kvarh"),
        Reading("1-0:1.7.0", 1500.0 + n % 100, "W"),
        Reading("1-0:2.7.0", 0.0, "W"),
        Reading("1-0:3.7.0", 120.0, "var"),
        Reading("1-0:4.7.0", 0.0, "var"),
        Reading("1-0:14.7.0", 50.0 + (n % 7) / 100, "Hz"),
        Reading("1-0:13.7.0", 0.97, None),
    ]
    for phase, (power, voltage, current) in enumerate(((21, 32, 31), (41, 52, 51), (61, 72, 71))):
        readings += [
            Reading(f"1-0:{power}.7.0", 500.0 + phase + n % 50, "W"),
            Reading(f"1-0:{power + 1}.7.0", 0.0, "W"),
            Reading(f"1-0:{voltage}.7.0", 230.0 + (n % 30) / 10, "V"),
            Reading(f"1-0:{current}.7.0", 2.17 + phase, "A"),
        ]
    return tuple(readings)


def _settings(data_dir: Path, port: int) -> config.Settings:
    return config.loads(
        f'[gateway]\nname = "bench"\ndata_dir = "{data_dir}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nbase_topic = "bench"\ndiscovery = false\n'
        '[http]\nenabled = false\n[zeroconf]\nenabled = false\n[[meters]]\nid = "main"\n'
    )


async def _scenario(name: str, port: int, workdir: Path, count: int) -> tuple[float, float]:
    gateway = Gateway(_settings(workdir / name, port), outputs=lambda _g: [])
    bridge = MqttBridge(gateway)
    gateway.outputs = [bridge]
    at = utc_now()

    def sample(n: int) -> None:
        nonlocal at
        at += timedelta(seconds=1)
        gateway.submit("bench", Sample("main", "bench", at, _readings(n)))
        gateway.flush()

    task: asyncio.Task[None] | None = None
    try:
        if name == "backlog":
            for n in range(count):
                sample(n)
            task = asyncio.create_task(bridge.run())
            await _until(lambda: bridge.connected)
            cpu, start = time.process_time(), time.perf_counter()
            await _until(lambda: bridge.outbox.waiting == 0)
        else:
            task = asyncio.create_task(bridge.run())
            await _until(lambda: bridge.connected)
            await asyncio.sleep(0.2)
            cpu, start = time.process_time(), time.perf_counter()
            for n in range(count):
                if name == "live":
                    sample(n)
                else:
                    gateway.report(Event("main", utc_now(), "bench", f"event {n}", {"n": n}))
                if n % 50 == 0:
                    await asyncio.sleep(0)  # let the bridge publish while we produce
            await _until(lambda: bridge.outbox.waiting == 0)
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gateway.store.close()


async def _until(predicate: Callable[[], bool], timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark stalled")
        await asyncio.sleep(0.001)


def _run(loop: str, coroutine: Coroutine[Any, Any, tuple[float, float]]) -> tuple[float, float]:
    if loop == "uvloop":
        import uvloop  # noqa: PLC0415 - optional

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def measure(messages: int, loops: list[str]) -> list[Result]:
    """Every scenario under every loop, each against a fresh broker and store."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-", dir=SCRATCH) as tmp:
        workdir = Path(tmp)
        for loop in loops:
            for scenario in ("live", "events", "backlog"):
                run_dir = workdir / f"{loop}-{scenario}"
                run_dir.mkdir()
                with _broker(run_dir) as port, _subscriber(port, messages) as sub:
                    seconds, cpu = _run(loop, _scenario(scenario, port, run_dir, messages))
                    try:
                        out, _ = sub.communicate(timeout=SUBSCRIBER_WAIT_S)
                    except subprocess.TimeoutExpired:
                        out = ""  # it heard fewer than were published: said below
                    received = int(out.split()[0]) if out.split() else 0
                    if received < messages:
                        raise RuntimeError(f"{scenario}: subscriber got {received} messages")
                results.append(Result(scenario, loop, messages, seconds, cpu))
    return results


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both")
    args = parser.parse_args(argv)
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    results = measure(args.messages, loops)
    print(f"{'scenario':<9} {'loop':<8} {'messages':>8} {'msg/s':>9} {'CPU s/1000':>11}")
    for r in results:
        print(f"{r.scenario:<9} {r.loop:<8} {r.messages:>8} {r.rate:>9.0f} {r.cpu_per_1000:>11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
