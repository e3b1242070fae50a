"""SD card: the bytes the whole gateway process writes, and its log lines, in a steady state.

Run: ``.venv/bin/python -m bench.sd_card [--meters N ...] [--hours H] [--speed X]
[--checkpoint-s S ...] [--ups] [--no-top-up] [--json OUT]``

``meter-gateway run`` as systemd runs it (default log level, stderr to a pipe as to journald), a
mosquitto on loopback taking its messages, discovery and HTTP on, N simulated three-phase meters
sampling at 1 Hz of meter time with every engine feature on (bench/engine_load.py's meter: seasons,
demand, load profile, analysis logger, breaker, smart disconnect, prepayment). The simulator runs
``--speed`` times faster than the wall clock, and the checkpoint interval is divided by the same
factor, so an hour of meter time holds the checkpoints, profile and analysis intervals a real hour
does. Counted: /proc/PID/io ``write_bytes`` of the gateway process (everything it makes the kernel
write to storage: SQLite's database, WAL and wal-index, anything else) from the end of its 30 s
warm-up over ``--hours`` of meter time (the first meter's clock read from the HTTP API at both
ends, so a slowed simulator counts what it did cover), extrapolated to a day. The bench calls
sync() every fraction of a checkpoint interval: on a real card checkpoints are minutes apart and
the kernel writes dirty pages back within 30 s, so each checkpoint dirties its pages afresh;
without the sync, pages dirtied again before write-back would be counted once. What runs on the
wall clock (the hourly log summary, the hourly wall-clock note, MQTT keep-alives) is not
accelerated: the log lines are reported per wall hour.

Prepayment stays on, and each meter is topped up during the warm-up (``TOP_UP_KWH``, through the
HTTP API as a utility's top-up would come) so the window measures a household with credit: a
new meter starts at 0 credit, and without it all the bench's identical meters ran out together
inside the window (four or five events a meter, each its own commit), a once-in-a-meter's-life
burst that the extrapolation counted four times a day. ``--no-top-up`` measures that burst
(bench/FINDINGS.md "SD card").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.engine_load import CONFIG as ENGINE_CONFIG
from bench.peers import SCRATCH
from gateway import config
from tests.support.processes import GATEWAY, Broker, free_port, stop, wait_for_port

# The gateway checkpoints every second for its first 30 s (app.SUMMARY_WARMUP_S): the count
# starts after it.
WARMUP_S = 35.0
# sync() this many times per checkpoint interval (wall time), so no checkpoint's pages are
# still dirty when the next one writes them.
SYNCS_PER_CHECKPOINT = 4
HEAD = """
[gateway]
timezone = "Europe/Copenhagen"
data_dir = "{data}"
checkpoint_interval_s = {checkpoint_wall_s}
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
[http]
port = {http_port}
token_file = "{token_file}"
[zeroconf]
enabled = false
"""
SIM = """
[[modules]]
type = "sim"
name = "sim-{meter}"
meter = "{meter}"
speed = {speed}
interval_s = {interval_s}
pv_kwp = 5.0
"""


# A household's top-up: far more than a bench window spends (a few kWh a meter hour at most),
# so no warning level is crossed in it.
TOP_UP_KWH = 500
TOKEN = "bench sd card top-up token"


def _written_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/io has no write_bytes")


def _meter_time(http_port: int) -> datetime:
    """The first meter's clock (its power register's time) as the gateway's HTTP API shows it:
    what the window covered, however the shared host slowed the simulator down."""
    url = f"http://127.0.0.1:{http_port}/api/v1/meters/m0/registers/1-0:1.7.0"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return datetime.fromisoformat(json.load(answer)["at"])


def _top_up(http_port: int, meter: str) -> None:
    """Credit for a meter, as a utility's top-up arrives (the HTTP command with the token)."""
    body = {"args": {"id": f"bench-{meter}", "sequence": 1, "amount": str(TOP_UP_KWH)}}
    request = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/api/v1/meters/{meter}/commands/top_up",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status != 200:
            raise RuntimeError(f"top-up of {meter} refused: {answer.read()!r}")


def _config(
    work: Path, meters: int, speed: float, checkpoint_s: float, mqtt_port: int, http_port: int
) -> str:
    # engine_load's meter (its braces doubled for str.format), once per simulated meter
    meter = ENGINE_CONFIG[ENGINE_CONFIG.index("[[meters]]") :].replace("{{", "{").replace("}}", "}")
    text = HEAD.format(
        data=work / "data",
        checkpoint_wall_s=checkpoint_s / speed,
        mqtt_port=mqtt_port,
        http_port=http_port,
        token_file=work / "token",
    )
    for n in range(meters):
        text += meter.replace('id = "main"', f'id = "m{n}"')
        text += SIM.format(meter=f"m{n}", speed=speed, interval_s=1.0 / speed)
    config.loads(text)  # refuse a bench config the gateway would refuse, before starting it
    return text


def measure(
    meters: int, *, hours: float, speed: float, checkpoint_s: float, top_up: bool = True
) -> dict[str, Any]:
    """Bytes a day and log lines of a gateway with ``meters`` simulated meters; without
    ``top_up`` they start at no credit and run out inside the window."""
    with tempfile.TemporaryDirectory(prefix="bench-sd-", dir=SCRATCH) as folder:
        work = Path(folder)
        broker = Broker(work)
        broker.start()
        conf = work / "gateway.toml"
        (work / "token").write_text(TOKEN + "\n")
        (work / "token").chmod(0o600)
        http_port = free_port()
        conf.write_text(_config(work, meters, speed, checkpoint_s, broker.port, http_port))
        lines: list[tuple[float, str]] = []
        process = subprocess.Popen(
            [str(GATEWAY), "run", "--config", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        reader = threading.Thread(
            target=lambda: lines.extend((time.monotonic(), line) for line in process.stderr or ()),
            daemon=True,
        )
        reader.start()
        try:
            wait_for_port(broker.port)
            wait_for_port(http_port, 30.0)
            warmup_end = time.monotonic() + WARMUP_S
            for n in range(meters if top_up else 0):
                _top_up(http_port, f"m{n}")
            time.sleep(max(0.0, warmup_end - time.monotonic()))
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited: {''.join(x for _, x in lines)[-2000:]}")
            # The HTTP server loads at its first client (gateway/lan/server.py), and Python may
            # write its modules' bytecode then: a one-off of the start, not of the steady state.
            _meter_time(http_port)
            os.sync()
            start, before = time.monotonic(), _written_bytes(process.pid)
            meter_start = _meter_time(http_port)
            window_s = hours * 3600 / speed
            period = min(2.0, checkpoint_s / speed / SYNCS_PER_CHECKPOINT)
            while time.monotonic() - start < window_s:
                time.sleep(period)
                os.sync()
            written = _written_bytes(process.pid) - before
            end = time.monotonic()
            covered_h = (_meter_time(http_port) - meter_start).total_seconds() / 3600
        finally:
            stop(process, 30.0)
            broker.stop()
        reader.join(5)
        process.stderr.close()
    window = [line for at, line in lines if start <= at <= end]
    return {
        "meters": meters,
        "top_up": top_up,
        "checkpoint_s": checkpoint_s,
        "speed": speed,
        "meter_hours": covered_h,
        "written_bytes": written,
        "bytes_per_day": written * 24 / covered_h,
        "log_lines_in_window": len(window),
        "log_lines_per_wall_hour": len(window) * 3600 / (end - start),
        "log_sample": window[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--hours", type=float, default=2.0, help="meter hours (default 2)")
    parser.add_argument("--speed", type=float, default=60.0, help="sim time acceleration")
    parser.add_argument(
        "--ups",
        action="store_true",
        help="also one meter at checkpoint_interval_s = 5 (a UPS or supercap HAT), x10, 15 min",
    )
    parser.add_argument(
        "--checkpoint-s",
        type=float,
        nargs="+",
        default=[config.GatewaySection().checkpoint_interval_s],
        help="checkpoint intervals in meter seconds (default: the gateway's default)",
    )
    parser.add_argument(
        "--no-top-up",
        action="store_true",
        help="leave the meters at no credit: every one runs out in the window (the events' cost)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    rows = [
        measure(
            n,
            hours=args.hours,
            speed=args.speed,
            checkpoint_s=checkpoint_s,
            top_up=not args.no_top_up,
        )
        for checkpoint_s in args.checkpoint_s
        for n in args.meters
    ]
    if args.ups:
        rows.append(measure(1, hours=0.25, speed=10.0, checkpoint_s=5.0))
    for row in rows:
        print(
            f"{row['meters']} meter(s){'' if row['top_up'] else ' out of credit'},"
            f" checkpoint every {row['checkpoint_s']:g} s:"
            f" {row['bytes_per_day'] / 1e6:,.2f} MB written per day"
            f" ({row['written_bytes']:,} bytes in {row['meter_hours']:.2f} meter hours at"
            f" x{row['speed']:g}); {row['log_lines_in_window']} log lines"
            f" ({row['log_lines_per_wall_hour']:.0f} per wall hour)"
        )
        for line in row["log_sample"]:
            print("   ", line.rstrip())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
