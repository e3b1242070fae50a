"""End to end: sim meters -> engine -> (memory) outbox -> a real mosquitto -> subscriber.

Run: ``.venv/bin/python -m bench.e2e [--meters 10,100,1000] [--loop uvloop|asyncio] [--quick]``

Each scenario is one worker process (``--worker``) that starts its own mosquitto on a free
loopback port, a subscriber process that stamps every ``<base>/<meter>/state`` message on
arrival (CLOCK_MONOTONIC is system-wide, so both processes' stamps compare), and the Gateway
itself (``gateway.app.Gateway.serve``, production outputs: MQTT with discovery, the HTTP server)
under the chosen event loop. The meters are ``sim`` meters at 1 Hz of meter time; the bench
accelerates them all together (a module ``bench_sim`` registered in the worker only: the sim
adapter's household readings, pre-computed as a shared one-hour trace so that the simulator
does not eat the CPU it is measuring, and a pace the worker sets).

Per scenario:

- nominal: every meter at 1 Hz for 11 s with the production ``publish_interval_s`` (1 s):
  latency from ``Gateway.submit`` of the Sample to arrival at the subscriber (p50/p99; state
  leaves from memory at once, the store sees only checkpoints), and the event loop's lag.
  "flush -> broker" is from the last checkpoint before the sample (kept for older results).
- ramp: the pace goes up by x1.5 a step until the gateway cannot keep up (fewer samples than
  asked, or the outbox holding more than one flush's messages at the end of a step); the last
  step that kept up is the sustained rate, with its CPU seconds per 1,000 samples (the worker
  process, simulator included; its share is measured and given apart) and peak RSS.

bench/e2e_inprocess.py measures the gateway's own work per sample around the engine with the
same bench meters, in one process, without the broker and the event loop (CPU or instructions).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.peers import SCRATCH
from gateway import config, registry
from gateway.adapter import ModuleContext
from gateway.app import SUMMARY_WARMUP_S, Gateway
from gateway.config import ModuleConfig
from gateway.model import Reading, Sample, utc_now
from gateway.mqtt.bridge import MqttBridge
from modules.sim.adapter import _kwh, _readings
from modules.sim.household import Household
from tests.support.processes import Broker, free_port

TRACE_S = 3600
PUBLISH_INTERVAL_S = 1.0  # the production default, stated here so a change is seen
LAG_PROBE_S = 0.1

SUBSCRIBER = r"""
import json, signal, sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, out = int(sys.argv[1]), open(sys.argv[2], "w")
lines = []
def on_message(client, userdata, message):
    now = time.monotonic()
    doc = json.loads(message.payload)
    lines.append(f"{doc['meter']}\t{doc['at']}\t{now}\n")
def on_connect(client, userdata, flags, rc, props):
    client.subscribe([("bench/+/+/state", 1)])  # <base>/<gateway>/<meter>/state
def on_subscribe(*args):
    print("ready", flush=True)
def stop(*args):
    client.disconnect()
client = paho.Client(CallbackAPIVersion.VERSION2)
client.on_message, client.on_connect, client.on_subscribe = on_message, on_connect, on_subscribe
signal.signal(signal.SIGTERM, stop)
client.connect("127.0.0.1", int(sys.argv[1]))
client.loop_forever()
out.writelines(lines)
out.close()
"""


# the bench's meters -----------------------------------------------------------------------------


class _Pace:
    """Simulated seconds per real second, shared by every bench meter in the worker."""

    speed = 1.0


PACE = _Pace()


def _trace() -> list[tuple[float, float, tuple[Reading, ...]]]:
    """One hour of a household: (power W, reactive var, instantaneous readings) per second."""
    house = Household(pv_kwp=5.0)
    start = datetime(2026, 1, 14, 6, tzinfo=UTC)
    trace = []
    for second in range(TRACE_S):
        snap = house.at(start + timedelta(seconds=second))
        readings = _readings(snap, [0.0, 0.0, 0.0, 0.0])[4:]
        trace.append((snap.power_w, snap.reactive_var, readings))
    return trace


_TRACE: list[tuple[float, float, tuple[Reading, ...]]] = []


class BenchSimConfig(ModuleConfig, frozen=True):
    """``type = "bench_sim"``: a sim meter at 1 Hz of meter time, paced by the bench."""

    meter: str
    offset_s: int = 0


class BenchSim:
    """The sim adapter's readings from a shared trace; one sample per meter second."""

    Config = BenchSimConfig

    def __init__(self, config: BenchSimConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Sample until cancelled, at 1 Hz of meter time times the bench's pace."""
        totals = [0.0, 0.0, 0.0, 0.0]
        at = utc_now().replace(microsecond=0)
        second = self.config.offset_s
        # Meters are not in step with each other: spread the first samples over a second.
        due = time.monotonic() + (self.config.offset_s % 97) / 97 / PACE.speed
        while True:
            interval = 1.0 / PACE.speed
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -interval:
                due = time.monotonic()  # behind: the loop is saturated; never burst
                await asyncio.sleep(0)
            ctx.submit(Sample(self.config.meter, self.config.name, at, _sample(totals, second)))
            at += timedelta(seconds=1)
            second += 1


def _sample(totals: list[float], second: int) -> tuple[Reading, ...]:
    power, reactive, instantaneous = _TRACE[second % TRACE_S]
    totals[0] += max(power, 0.0) / 3600
    totals[1] += max(-power, 0.0) / 3600
    totals[2] += max(reactive, 0.0) / 3600
    totals[3] += max(-reactive, 0.0) / 3600
    return (
        Reading("1-0:1.8.0", _kwh(totals[0]), "kWh"),
        Reading("1-0:2.8.0", _kwh(totals[1]), "kWh"),
        Reading("1-0:3.8.0", _kwh(totals[2]), "kvarh"),
        Reading("1-0:4.8.0", _kwh(totals[3]), "kvarh"),
        *instantaneous,
        # A value that changes every sample: the state's "at" is its newest register change,
        # so this makes it the newest sample's time, which the latency is measured from.
        Reading("bench_sample", second, None),
    )


def _sim_cost_us() -> float:
    """What making one sample costs the bench meter (to tell it apart from the gateway's)."""
    totals = [0.0] * 4
    count = 20_000
    start = time.process_time()
    for second in range(count):
        _sample(totals, second)
    return (time.process_time() - start) / count * 1e6


# the gateway under test -------------------------------------------------------------------------


class BenchGateway(Gateway):
    """The production Gateway, noting when each sample came in and when each flush began."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.submitted: dict[tuple[str, datetime], float] = {}
        self.samples = 0
        self.flushes: list[float] = []

    def submit(self, module: str, sample: Sample) -> None:
        """Stamp, then the real thing."""
        self.submitted[(sample.meter, sample.at)] = time.monotonic()
        self.samples += 1
        super().submit(module, sample)

    def flush(self) -> None:
        """Stamp, then the real thing."""
        self.flushes.append(time.monotonic())
        super().flush()


def _config(data_dir: Path, port: int, meters: int) -> str:
    lines = [
        f'[gateway]\nname = "bench"\ndata_dir = "{data_dir}"\ntimezone = "Europe/Copenhagen"',
        f"publish_interval_s = {PUBLISH_INTERVAL_S}",
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nbase_topic = "bench"',
        f'[http]\nbind = "127.0.0.1"\nport = {free_port()}\n[zeroconf]\nenabled = false',
    ]
    for n in range(meters):
        lines.append(f'[[meters]]\nid = "m{n:04}"')
    for n in range(meters):
        offset = n * 37 % TRACE_S
        lines.append(
            f'[[modules]]\ntype = "bench_sim"\nname = "s{n:04}"\nmeter = "m{n:04}"\n'
            f"offset_s = {offset}"
        )
    return "\n".join(lines) + "\n"


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _lag_probe(lags: list[float]) -> None:
    while True:
        before = time.monotonic()
        await asyncio.sleep(LAG_PROBE_S)
        lags.append(time.monotonic() - before - LAG_PROBE_S)


async def _step(
    gateway: BenchGateway, bridge: MqttBridge, meters: int, speed: float, seconds: float
) -> dict[str, Any]:
    # Meters asleep on the old pace wake within one old interval: measure after that.
    old, PACE.speed = PACE.speed, speed
    await asyncio.sleep(1.0 / old + 0.1)
    lags: list[float] = []
    probe = asyncio.create_task(_lag_probe(lags))
    samples, cpu, start = gateway.samples, time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - start
    cpu = time.process_time() - cpu
    samples = gateway.samples - samples
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    target = meters * speed
    achieved = samples / elapsed
    waiting = bridge.outbox.waiting
    lags.sort()
    kept_up = achieved >= 0.95 * target and waiting <= meters
    return {
        "speed": speed,
        "target_per_s": target,
        "samples_per_s": achieved,
        "cpu_s_per_1000": cpu / samples * 1000 if samples else None,
        "cpu_share": cpu / elapsed,
        "outbox_waiting": waiting,
        "loop_lag_p99_s": lags[int(len(lags) * 0.99)] if lags else None,
        "rss_kb": _rss_kb(),
        "kept_up": kept_up,
        "window": (start, start + elapsed),
    }


async def _scenario(args: argparse.Namespace, port: int, data_dir: Path) -> dict[str, Any]:
    settings = config.loads(_config(data_dir, port, args.meters))
    gateway = BenchGateway(settings)
    # Production flushes every 10 s once up; the first 30 s it flushes each second for newcomers.
    gateway.started_at -= timedelta(seconds=SUMMARY_WARMUP_S + 1)
    serve = asyncio.create_task(gateway.serve())
    started = time.monotonic()
    await gateway.ready.wait()
    bridge = next(o for o in gateway.outputs if isinstance(o, MqttBridge))
    while not bridge.connected or bridge.outbox.waiting:
        if time.monotonic() - started > 120:
            raise TimeoutError("the gateway did not connect and settle")
        await asyncio.sleep(0.05)
    steps = [await _step(gateway, bridge, args.meters, 1.0, args.nominal_s)]
    speed = max(1.5, args.start_rate / args.meters)
    for _ in range(args.max_steps):
        step = await _step(gateway, bridge, args.meters, speed, args.step_s)
        steps.append(step)
        if not step["kept_up"]:
            break
        speed *= 1.5
    PACE.speed = 1.0
    # Let the last flush reach the broker before stopping.
    await asyncio.sleep(1.0)
    gateway.request_stop()
    await serve
    return {
        "steps": steps,
        "submitted": gateway.submitted,
        "flushes": gateway.flushes,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _latencies(
    arrivals: list[tuple[str, datetime, float]],
    submitted: dict[tuple[str, datetime], float],
    flushes: list[float],
    window: tuple[float, float],
) -> dict[str, Any]:
    to_broker, from_flush = [], []
    for meter, at, arrived in arrivals:
        sent = submitted.get((meter, at))
        if sent is None or not window[0] <= sent < window[1]:
            continue
        to_broker.append(arrived - sent)
        index = bisect.bisect_left(flushes, sent)
        if index < len(flushes):
            from_flush.append(arrived - flushes[index])
    return {
        "messages": len(to_broker),
        "sample_to_broker_p50_s": _quantile(to_broker, 0.5),
        "sample_to_broker_p99_s": _quantile(to_broker, 0.99),
        "flush_to_broker_p50_s": _quantile(from_flush, 0.5),
        "flush_to_broker_p99_s": _quantile(from_flush, 0.99),
    }


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, int(q * 100) - 1)]


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One scenario in this process: broker, subscriber, gateway; returns its figures."""
    registry.ADAPTERS["bench_sim"] = f"{__name__}:BenchSim"  # this very module: its PACE
    _TRACE[:] = _trace()
    sim_us = _sim_cost_us()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-", dir=SCRATCH) as folder:
        work = Path(folder)
        broker = Broker(work)
        broker.start()
        arrivals_file = work / "arrivals.tsv"
        subscriber = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, str(broker.port), str(arrivals_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert subscriber.stdout is not None
            if subscriber.stdout.readline().strip() != "ready":
                raise RuntimeError("subscriber did not start")
            if args.loop == "uvloop":
                import uvloop  # noqa: PLC0415 - optional

                found = uvloop.run(_scenario(args, broker.port, work / "data"))
            else:
                found = asyncio.run(_scenario(args, broker.port, work / "data"))
            subscriber.terminate()
            subscriber.wait(30)
        finally:
            if subscriber.poll() is None:
                subscriber.kill()
                subscriber.wait()
            broker.stop()
        arrivals = []
        for line in arrivals_file.read_text().splitlines():
            meter, at, arrived = line.split("\t")
            arrivals.append((meter, datetime.fromisoformat(at), float(arrived)))
    steps = found["steps"]
    for step in steps:
        step["latency"] = _latencies(arrivals, found["submitted"], found["flushes"], step["window"])
        del step["window"]
    kept = [s for s in steps[1:] if s["kept_up"]] or steps[:1]
    best = max(kept, key=lambda s: s["samples_per_s"])
    return {
        "meters": args.meters,
        "loop": args.loop,
        "publish_interval_s": PUBLISH_INTERVAL_S,
        "sim_cpu_us_per_sample": sim_us,
        "nominal": steps[0],
        "sustained": best,
        "steps": steps,
        "peak_rss_mb": found["peak_rss_kb"] / 1024,
    }


def run(
    meters: int, loop: str, *, nominal_s: float, step_s: float, max_steps: int, start_rate: float
) -> dict[str, Any]:
    """One scenario in a fresh worker process (its peak RSS is its own)."""
    command = [
        sys.executable,
        "-m",
        "bench.e2e",
        "--worker",
        f"--meters={meters}",
        f"--loop={loop}",
        f"--nominal-s={nominal_s}",
        f"--step-s={step_s}",
        f"--max-steps={max_steps}",
        f"--start-rate={start_rate}",
    ]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=root, env=os.environ.copy()
    )
    if done.returncode != 0:
        raise RuntimeError(f"e2e worker ({meters} meters, {loop}) failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def describe(result: dict[str, Any]) -> str:
    """One line for a scenario."""
    nominal, best = result["nominal"], result["sustained"]
    lat = nominal["latency"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.0f} ms"

    return (
        f"{result['meters']:>5} meters {result['loop']:8} sustained "
        f"{best['samples_per_s']:8,.0f} samples/s, CPU {best['cpu_s_per_1000']:.3f} s/1000 "
        f"(sim {result['sim_cpu_us_per_sample'] / 1000:.3f}), peak RSS "
        f"{result['peak_rss_mb']:.0f} MB; at 1 Hz: sample->broker p50 "
        f"{ms(lat['sample_to_broker_p50_s'])} p99 {ms(lat['sample_to_broker_p99_s'])}, "
        f"flush->broker p50 {ms(lat['flush_to_broker_p50_s'])} "
        f"p99 {ms(lat['flush_to_broker_p99_s'])}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios (or, with --worker, one of them here)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", default="10,100,1000")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--nominal-s", type=float, default=11.0)
    parser.add_argument("--step-s", type=float, default=5.0)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--start-rate", type=float, default=1000.0, help="first ramp samples/s")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.worker:
        args.meters = int(args.meters)
        print(json.dumps(worker(args), default=str))
        return 0
    results = []
    for meters in (int(m) for m in args.meters.split(",")):
        result = run(
            meters,
            args.loop,
            nominal_s=args.nominal_s,
            step_s=args.step_s,
            max_steps=args.max_steps,
            start_rate=args.start_rate,
        )
        print(describe(result))
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
