"""The gateway's own work per sample around the engine, in one process, without a broker.

Run: ``.venv/bin/python -m bench.e2e_inprocess [--meters 1000] [--hz 20] [--rounds 10]``
(in a compiled tree: ``cd build/<tree> && PYTHONPATH=. ../../.venv/bin/python -m ...``).

bench/e2e.py measures the whole gateway against a real mosquitto, on a host whose other load
moves its figures by tens of percent. This takes the event loop, the broker and the bench
meters' own pacing out: the same bench meters' samples (bench/e2e.py's trace), made before
the clock starts, are fed to ``Gateway.submit`` with the production outputs built (MQTT not
connected, so a state message is built and queued, not sent), round by round over every
meter, and again to the engines alone. The difference is the per-sample bookkeeping and the
state messages; ``--hz`` is the meters' rate as the gateway's clock sees it, which decides how
many samples a state message covers (at most one per meter per publish interval: 1 Hz, a
message every sample; 20 Hz, one every ~16). Figures are process CPU per sample, and under
``valgrind --tool=callgrind`` the same run at two sizes gives instructions (bench/pi.py's way).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import e2e
from gateway import config, registry
from gateway.app import SUMMARY_WARMUP_S, Gateway
from gateway.model import Sample, utc_now
from gateway.outputs import default_outputs

WARMUP_ROUNDS = 3


def measure(meters: int, hz: float, rounds: int, *, trace_s: int = e2e.TRACE_S) -> dict[str, Any]:
    """CPU µs per sample: the engines alone, then ``Gateway.submit`` (fresh gateways each)."""
    # Registered for this measurement only: the registry is the process's, and whatever else
    # runs in it (the OpenAPI document, the test suite) must not meet a bench module.
    had = registry.ADAPTERS.get("bench_sim")
    registry.ADAPTERS["bench_sim"] = "bench.e2e:BenchSim"
    full, e2e.TRACE_S = e2e.TRACE_S, trace_s  # a shorter trace only makes it quicker to start
    try:
        e2e._TRACE[:] = e2e._trace()
        result: dict[str, Any] = {"meters": meters, "hz": hz, "rounds": rounds}
        for mode in ("engine", "gateway"):
            result[f"{mode}_us_per_sample"] = _run(mode, meters, hz, rounds)
    finally:
        e2e.TRACE_S = full
        e2e._TRACE.clear()
        if had is None:
            del registry.ADAPTERS["bench_sim"]
        else:
            registry.ADAPTERS["bench_sim"] = had
    result["around_engine_us_per_sample"] = (
        result["gateway_us_per_sample"] - result["engine_us_per_sample"]
    )
    return result


def _run(mode: str, meters: int, hz: float, rounds: int) -> float:
    clock = [1000.0]
    step = 1.0 / hz / meters
    with tempfile.TemporaryDirectory(prefix="bench-e2e-inprocess-") as folder:
        settings = config.loads(e2e._config(Path(folder), 1883, meters))
        gateway = Gateway(settings, monotonic=lambda: clock[0])
        gateway.started_at -= timedelta(seconds=SUMMARY_WARMUP_S + 1)  # past the warm-up
        gateway.outputs = list(default_outputs(gateway))
        engines = gateway.engines
        totals = [[0.0] * 4 for _ in range(meters)]
        start_at = utc_now().replace(microsecond=0)
        batches = [
            [
                Sample(
                    f"m{n:04}",
                    f"s{n:04}",
                    start_at + timedelta(seconds=r),
                    e2e._sample(totals[n], n * 37 + r),
                )
                for n in range(meters)
            ]
            for r in range(WARMUP_ROUNDS + rounds)
        ]
        started = 0.0
        for number, batch in enumerate(batches):
            if number == WARMUP_ROUNDS:
                started = time.process_time()
            if mode == "engine":
                for sample in batch:
                    engines[sample.meter].ingest(sample)
            else:
                for sample in batch:
                    gateway.submit(sample.source, sample)
                    clock[0] += step
        took = time.process_time() - started
        gateway.store.close()
    return took / (rounds * meters) * 1e6


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line of figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--hz", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--trace-s", type=int, default=e2e.TRACE_S, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.meters, args.hz, args.rounds, trace_s=args.trace_s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
