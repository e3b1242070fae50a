"""MQTT output throughput against mosquitto: live states from memory, events, spill and replay.

Run: ``.venv/bin/python -m bench.mqtt_throughput [--messages N] [--meters M] [--outage-s S]
[--loop asyncio|uvloop|both]``

Each scenario runs the production ``Gateway`` and its MQTT output (``MqttBridge``) in this
process against a fresh mosquitto on loopback (persistence on, so that the subscriber's session
outlives a broker restart, as a Home Assistant's does) and a fresh store on disk. A subscriber
process records every message; the bench fails unless each one arrived exactly once and each
meter's ``seq`` (each event's log id) grows by one, and fails rather than hangs when something
stops moving (the ``*_WAIT_S`` bounds below).

- live: ``--meters`` meters at 1 Hz of meter time with the production ``publish_interval_s``
  (1 s), round robin. Meter time runs as fast as the output takes the messages (at most
  ``LIVE_WINDOW`` unacknowledged at a time), so every sample is due at the throttle and becomes
  one state message: Gateway.submit -> engine -> state from memory -> outbox (memory) -> QoS 1
  PUBLISH -> PUBACK. The figure is what the output delivers, not what the throttle lets through;
  at the default interval it is the number of 1 Hz meters one gateway can publish for. The
  process's CPU includes the engine's work on each sample. Nothing may reach the disk (checked:
  no spill). msg/s counts until the broker acknowledged the last message, "heard" until the
  subscriber received it.
- events: events through the non-volatile log (one transaction, one fsync each), then MQTT.
- replay: the broker stops; ``--messages`` state messages are queued over ``--outage-s`` seconds
  with ``outbox_spill_after_s`` = ``SPILL_AFTER_S`` and spill to SQLite in batches (deflated);
  bytes the process wrote meanwhile (/proc/self/io ``write_bytes``) per payload byte waiting.
  Then the broker comes back: messages/s from the reconnect until the outbox is empty, every one
  of them read back from disk.

CPU seconds are the gateway process's own (user + system) per 1,000 messages; the broker and
the subscriber run in other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import queue
import signal
import subprocess
import sys
import tempfile
import threading
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
from tests.support.mqtt import persistent_broker
from tests.support.processes import Broker

SCENARIOS = ("live", "events", "replay")
METERS = 100
OUTAGE_S = 5.0
# The production default, stated here so that a change is seen.
PUBLISH_INTERVAL_S = 1.0
# The replay's: production waits 30 s (the other scenarios keep that, so that a busy host's
# stall does not spill them); 1 s makes a spill per second of the compressed outage, each a
# batch of the meters' states, as production writes one batch per 30 s of a real one.
SPILL_AFTER_S = 1.0
# Unacknowledged live messages the producer lets the output hold: enough to keep the drain's
# batches full, far from the memory bound that would spill.
LIVE_WINDOW = 500
# Bounds on waits, each named in the error it raises: a broken path fails, it does not hang.
CONNECT_WAIT_S = 60.0  # the bridge's first connection to a broker that listens
DELIVER_WAIT_S = 120.0  # the outbox empties once the broker is there
DISCONNECT_WAIT_S = 60.0  # the bridge notices the broker went away
SPILL_WAIT_S = SPILL_AFTER_S + 30.0  # everything queued in the outage is on disk
RECONNECT_WAIT_S = 120.0  # the bridge's backoff reaches the broker that came back
SUBSCRIBER_WAIT_S = 60.0  # the subscriber has heard everything the broker acknowledged
SUBSCRIBER_START_S = 30.0
POLL_S = 0.002

SUBSCRIBER = r"""
import json, signal, sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, want, out, topic = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
seen = []
def on_message(client, userdata, message):
    doc = json.loads(message.payload)
    number = doc.get("seq", doc.get("id"))
    seen.append((message.topic, doc["meter"], number, len(message.payload), time.monotonic()))
    if len(seen) == want:
        print("done", flush=True)
def on_connect(client, userdata, flags, reason, props):
    if not flags.session_present:  # a resumed session keeps its subscriptions
        client.subscribe([(topic, 1)])
def on_subscribe(*args):
    print("ready", flush=True)
def stop(*args):
    client.disconnect()
client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter", clean_session=False)
client.on_message, client.on_connect, client.on_subscribe = on_message, on_connect, on_subscribe
client.reconnect_delay_set(1, 1)
signal.signal(signal.SIGTERM, stop)
client.connect("127.0.0.1", port)
client.loop_forever()
with open(out, "w") as f:
    json.dump(seen, f)
"""


class BenchError(RuntimeError):
    """The path under test lost, repeated or reordered messages, or stopped moving."""


@dataclass
class Result:
    """One scenario's figures."""

    scenario: str
    loop: str
    messages: int
    seconds: float
    cpu_s: float
    meters: int
    # What the gateway process wrote to storage: during the run (live, events) or during the
    # outage (replay); payload bytes are those delivered (live, events) or waiting (replay).
    disk_bytes: int
    payload_bytes: int
    spills: int
    # live, events: from the first message queued until the subscriber heard the last one.
    heard_s: float | None = None

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds

    @property
    def heard_rate(self) -> float | None:
        """Messages per second as the subscriber heard them (live, events)."""
        return None if self.heard_s is None else self.messages / self.heard_s

    @property
    def cpu_per_1000(self) -> float:
        """CPU seconds of the gateway process per 1,000 messages."""
        return self.cpu_s / self.messages * 1000

    @property
    def written_per_payload_byte(self) -> float:
        """Bytes written to storage per payload byte."""
        return self.disk_bytes / self.payload_bytes

    def figures(self) -> dict[str, Any]:
        """Everything, derived figures included (for results.json)."""
        return vars(self) | {
            "rate": self.rate,
            "heard_rate": self.heard_rate,
            "cpu_per_1000": self.cpu_per_1000,
            "written_per_payload_byte": self.written_per_payload_byte,
        }


@dataclass(frozen=True)
class _Run:
    """What a scenario measured in the gateway's process."""

    start: float  # time.monotonic()
    seconds: float
    cpu_s: float
    disk_bytes: int
    spills: int


def _write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise BenchError("/proc/self/io has no write_bytes")


# What the subscriber noted of a message: topic, meter, seq (event id), payload bytes, and
# time.monotonic() on arrival (CLOCK_MONOTONIC is system-wide: it compares with ours).
Heard = tuple[str, str, int | None, int, float]


def verify(scenario: str, seen: list[Heard], want: int, *, first: int | None) -> list[Heard]:
    """Every message once, each meter's numbers one up from the last (from ``first`` when
    given): anything lost, repeated or out of order raises BenchError naming it."""
    if len(seen) != want:
        raise BenchError(f"{scenario}: subscriber got {len(seen)} of {want} messages")
    last: dict[str, int] = {}
    for topic, meter, number, *_rest in seen:
        expected = last[meter] + 1 if meter in last else first
        if number is None or (expected is not None and number != expected):
            raise BenchError(
                f"{scenario}: {topic} number {number} where {expected} was due"
                " (lost, repeated or out of order)"
            )
        last[meter] = number
    return seen


class _Subscriber:
    """The counting subscriber process; ``check`` says what arrived, or why it is wrong."""

    def __init__(self, port: int, want: int, out: Path, topic: str) -> None:
        self.want, self.out = want, out
        self.process = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, str(port), str(want), str(out), topic],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._expect("ready", SUBSCRIBER_START_S)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())
        self._lines.put("exited")

    def _expect(self, word: str, timeout_s: float) -> bool:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            return False
        if line != word:
            raise BenchError(f"subscriber said {line!r}, expected {word!r}")
        return True

    def check(self, scenario: str, *, first: int | None) -> list[Heard]:
        """Stop it and return what it heard, after ``verify``."""
        heard_all = self._expect("done", SUBSCRIBER_WAIT_S)
        self.close()
        seen = [
            (str(topic), str(meter), number, int(size), float(at))
            for topic, meter, number, size, at in json.loads(self.out.read_text())
        ]
        if not heard_all:
            raise BenchError(
                f"{scenario}: subscriber got {len(seen)} of {self.want} messages"
                f" within {SUBSCRIBER_WAIT_S:.0f} s"
            )
        return verify(scenario, seen, self.want, first=first)

    def close(self) -> None:
        """SIGTERM: it disconnects and writes what it heard."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(SUBSCRIBER_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(SUBSCRIBER_WAIT_S)  # it ends at the pipe's end of file
        if self.process.stdout is not None:
            self.process.stdout.close()


class _SpillCount(logging.Handler):
    """Counts the bridge's spill batches from its own debug line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.batches: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "MQTT outbox: %d messages to disk":
            self.batches.append(int(record.getMessage().split()[2]))


@contextlib.contextmanager
def _counting_spills() -> Iterator[_SpillCount]:
    counter = _SpillCount()
    logger = logging.getLogger("gateway.mqtt.bridge")
    level = logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)


def _readings(n: int, second: int) -> tuple[Reading, ...]:
    """Sample ``n`` overall, the meter's ``second``: 3.6 kW, within what the engine believes."""
    energy = Decimal(1000) + Decimal(second) / 1000
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


def _settings(data_dir: Path, port: int, meters: int, spill_after_s: float) -> config.Settings:
    return config.loads(
        f'[gateway]\nname = "bench"\ndata_dir = "{data_dir}"\n'
        f"publish_interval_s = {PUBLISH_INTERVAL_S}\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nbase_topic = "bench"\ndiscovery = false\n'
        f"outbox_spill_after_s = {spill_after_s}\n"
        "[http]\nenabled = false\n[zeroconf]\nenabled = false\n"
        + "".join(f'[[meters]]\nid = "m{m:03d}"\n' for m in range(meters))
    )


class _MeterTime:
    """The meters' clock: one publish interval per round of every meter (1 Hz each), handed to
    the Gateway as its monotonic clock, so its throttle sees meter time."""

    def __init__(self, meters: int) -> None:
        self.meters = meters
        self.samples = 0
        self.start = utc_now()

    def monotonic(self) -> float:
        return self.samples // self.meters * PUBLISH_INTERVAL_S

    def submit(self, gateway: Gateway) -> None:
        """The next meter's next sample."""
        n = self.samples
        second = n // self.meters
        at = self.start + timedelta(seconds=second * PUBLISH_INTERVAL_S)
        meter = f"m{n % self.meters:03d}"
        gateway.submit("bench", Sample(meter, "bench", at, _readings(n, second)))
        self.samples += 1


async def _until(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    found: Callable[[], object] | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            seen = "" if found is None else f" (found {found()})"
            raise BenchError(f"{what}: not within {timeout_s:.0f} s{seen}")
        await asyncio.sleep(POLL_S)


async def _scenario(
    name: str, broker: Broker, workdir: Path, count: int, meters: int, outage_s: float
) -> _Run:
    """One scenario in this process."""
    clock = _MeterTime(meters)
    spill_after_s = SPILL_AFTER_S if name == "replay" else config.MqttSection().outbox_spill_after_s
    settings = _settings(workdir / "data", broker.port, meters, spill_after_s)
    gateway = Gateway(settings, outputs=lambda _g: [], monotonic=clock.monotonic)
    bridge = MqttBridge(gateway)
    gateway.outputs = [bridge]
    task = asyncio.create_task(bridge.run())
    try:
        await _until(lambda: bridge.connected, CONNECT_WAIT_S, f"{name}: connect")
        await asyncio.sleep(0.2)  # the greeting (status, availability) is out of the way
        if name == "replay":
            return await _replay(gateway, bridge, broker, clock, count, outage_s)
        cpu, written, start = time.process_time(), _write_bytes(), time.monotonic()
        for n in range(count):
            if name == "live":
                clock.submit(gateway)
                if bridge.outbox.waiting >= LIVE_WINDOW:
                    await _until(
                        lambda: bridge.outbox.waiting < LIVE_WINDOW // 2,
                        DELIVER_WAIT_S,
                        f"{name}: the broker acknowledges",
                    )
            else:
                gateway.report(Event("m000", utc_now(), "bench", f"event {n}", {"n": n}))
                if n % 50 == 0:
                    await asyncio.sleep(0)  # let the bridge publish while we produce
        await _until(
            lambda: bridge.outbox.waiting == 0,
            DELIVER_WAIT_S,
            f"{name}: outbox empties",
            lambda: f"{bridge.outbox.waiting} waiting",
        )
        seconds, cpu = time.monotonic() - start, time.process_time() - cpu
        if bridge.outbox.spilled:
            raise BenchError(f"{name}: {bridge.outbox.spilled} messages spilled to disk")
        return _Run(start, seconds, cpu, _write_bytes() - written, 0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gateway.store.close()


async def _replay(
    gateway: Gateway,
    bridge: MqttBridge,
    broker: Broker,
    clock: _MeterTime,
    count: int,
    outage_s: float,
) -> _Run:
    broker.stop()
    await _until(lambda: not bridge.connected, DISCONNECT_WAIT_S, "replay: the link drops")
    with _counting_spills() as spills:
        written, start = _write_bytes(), time.monotonic()
        for n in range(count):
            clock.submit(gateway)
            # Paced over the outage in real time: the spill loop batches what waited.
            await asyncio.sleep(max(0.0, start + outage_s * (n + 1) / count - time.monotonic()))
        await _until(
            lambda: bridge.outbox.on_disk == count,
            SPILL_WAIT_S,
            f"replay: {count} messages on disk",
            lambda: bridge.outbox.on_disk,
        )
        written = _write_bytes() - written
    broker.start()
    await _until(lambda: bridge.connected, RECONNECT_WAIT_S, "replay: reconnect")
    cpu, start_replay = time.process_time(), time.monotonic()
    await _until(
        lambda: bridge.outbox.waiting == 0,
        DELIVER_WAIT_S,
        "replay: outbox empties",
        lambda: f"{bridge.outbox.waiting} waiting",
    )
    return _Run(
        start_replay,
        time.monotonic() - start_replay,
        time.process_time() - cpu,
        written,
        len(spills.batches),
    )


def _run(loop: str, coroutine: Coroutine[Any, Any, _Run]) -> _Run:
    if loop == "uvloop":
        import uvloop  # noqa: PLC0415 - optional

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def measure(
    messages: int, loops: list[str], *, meters: int = METERS, outage_s: float = OUTAGE_S
) -> list[Result]:
    """Every scenario under every loop, each against a fresh broker and store."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-", dir=SCRATCH) as tmp:
        for loop in loops:
            for scenario in SCENARIOS:
                run_dir = Path(tmp) / f"{loop}-{scenario}"
                run_dir.mkdir()
                kind = "event" if scenario == "events" else "state"
                broker = persistent_broker(run_dir)
                broker.start()
                try:
                    subscriber = _Subscriber(
                        broker.port, messages, run_dir / "heard.json", f"bench/+/+/{kind}"
                    )
                    try:
                        run = _run(
                            loop, _scenario(scenario, broker, run_dir, messages, meters, outage_s)
                        )
                        # A fresh store: each meter's states count from 1.
                        heard = subscriber.check(scenario, first=None if kind == "event" else 1)
                    finally:
                        subscriber.close()
                finally:
                    broker.stop()
                results.append(
                    Result(
                        scenario,
                        loop,
                        messages,
                        run.seconds,
                        run.cpu_s,
                        meters,
                        run.disk_bytes,
                        payload_bytes=sum(size for _t, _m, _n, size, _at in heard),
                        spills=run.spills,
                        # After the outage the subscriber's own reconnect would count too.
                        heard_s=None if scenario == "replay" else heard[-1][4] - run.start,
                    )
                )
    return results


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--meters", type=int, default=METERS)
    parser.add_argument("--outage-s", type=float, default=OUTAGE_S)
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both")
    args = parser.parse_args(argv)
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    results = measure(args.messages, loops, meters=args.meters, outage_s=args.outage_s)
    print(
        f"{'scenario':<8} {'loop':<8} {'meters':>6} {'messages':>8} {'msg/s':>7} {'heard/s':>7}"
        f" {'CPU s/1000':>10} {'written B':>10} {'per payload B':>13} {'spills':>6}"
    )
    for r in results:
        print(
            f"{r.scenario:<8} {r.loop:<8} {r.meters:>6} {r.messages:>8} {r.rate:>7.0f}"
            f" {'-' if r.heard_rate is None else f'{r.heard_rate:.0f}':>7}"
            f" {r.cpu_per_1000:>10.3f} {r.disk_bytes:>10} {r.written_per_payload_byte:>13.3f}"
            f" {r.spills:>6}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
