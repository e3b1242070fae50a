"""Start-up time to READY and idle RSS of ``meter-gateway run`` with every module type configured.

Run: ``.venv/bin/python -m bench.startup [--runs N] [--idle-s S]``

The gateway runs as systemd runs it: a subprocess with ``NOTIFY_SOCKET`` naming a unix datagram
socket of ours, so READY=1 arrives exactly when it would reach systemd (sd_notify(3)). The
config has one module of every registered type, each talking to its emulator
(``meter-gateway simulate TYPE --tcp PORT``, Z-Wave on a pty) or, for MQTT, a mosquitto on a free
port: sim, mbus, wmbus (iM871A), rs485 (KMP), optical (IEC 62056-21), tcpip (IEC 62056-21 and
DLMS over the wrapper), p1 (DSMR 5), zwave, mqtt_switch, and s0, s0_out, relay and tariff_input
on a GPIO chip that does not exist here (they load, fail to open the line and wait in backoff,
as on a Pi whose wiring is not there yet). HTTP is on (loopback); zeroconf is off (no multicast
off this host).

Figures: wall time from spawn to READY=1 (median of ``--runs``), VmRSS after ``--idle-s`` of
running, and the same two for the embedded default config (one sim meter) for scale.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.peers import SCRATCH
from tests.support.processes import GATEWAY, Broker, free_port, wait_for_port

READY_TIMEOUT_S = 60.0
EMULATORS = {
    # name: (simulate TYPE and arguments; {port} is filled in)
    "mbus": ["mbus", "--tcp", "{port}"],
    "wmbus": ["wmbus", "--tcp", "{port}", "--receiver", "im871a", "--interval", "5"],
    "kmp": ["kmp", "--tcp", "{port}"],
    "iec_optical": ["iec62056-21", "--tcp", "{port}"],
    "iec_tcp": ["iec62056-21", "--tcp", "{port}"],
    "p1": ["p1", "--tcp", "{port}"],
    "dlms": ["dlms", "--tcp", "{port}"],
}


def _config(
    data: Path, mqtt_port: int, http_port: int, ports: dict[str, int], zwave_pty: Path
) -> str:
    meters = ["sim", "mbus", "wmbus", "kmp", "optical", "iec", "p1", "dlms", "s0"]
    lines = [
        f'[gateway]\nname = "bench"\ndata_dir = "{data}"\ntimezone = "Europe/Copenhagen"',
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}',
        f'[http]\nbind = "127.0.0.1"\nport = {http_port}\n[zeroconf]\nenabled = false',
        *(f'[[meters]]\nid = "{m}"' for m in meters),
        '[[modules]]\ntype = "sim"\nname = "sim"\nmeter = "sim"',
        f'[[modules]]\ntype = "mbus"\nname = "mbus"\nport = "socket://127.0.0.1:{ports["mbus"]}"'
        '\n[[modules.devices]]\nmeter = "mbus"\nprimary_address = 1',
        f'[[modules]]\ntype = "wmbus"\nname = "radio"\nmeter = "wmbus"\n'
        f'device = "socket://127.0.0.1:{ports["wmbus"]}"\nreceiver = "im871a"\n'
        '[[modules.meters]]\nid = "12345678"\nkey = "00112233445566778899AABBCCDDEEFF"',
        f'[[modules]]\ntype = "rs485"\nname = "bus"\nmeter = "kmp"\n'
        f'port = "socket://127.0.0.1:{ports["kmp"]}"\nprotocol = "kmp"',
        f'[[modules]]\ntype = "optical"\nname = "ir"\nmeter = "optical"\n'
        f'port = "socket://127.0.0.1:{ports["iec_optical"]}"\nprotocol = "iec62056-21"',
        f'[[modules]]\ntype = "tcpip"\nname = "lan"\nmeter = "iec"\nhost = "127.0.0.1"\n'
        f'port = {ports["iec_tcp"]}\nprotocol = "iec62056-21"',
        f'[[modules]]\ntype = "tcpip"\nname = "cosem"\nmeter = "dlms"\nhost = "127.0.0.1"\n'
        f'port = {ports["dlms"]}\nprotocol = "dlms"',
        f'[[modules]]\ntype = "p1"\nname = "p1"\nmeter = "p1"\n'
        f'port = "socket://127.0.0.1:{ports["p1"]}"',
        f'[[modules]]\ntype = "zwave"\nname = "zwave"\nmeter = "sim"\nport = "{zwave_pty}"',
        '[[modules]]\ntype = "mqtt_switch"\nname = "plug"\nmeter = "sim"\n'
        'command_topic = "cmnd/plug1/POWER"\nstate_topic = "stat/plug1/POWER"',
        '[[modules]]\ntype = "s0"\nname = "s0"\nmeter = "s0"\nchip = "software:absent"\n'
        'line = "GPIO17"',
        '[[modules]]\ntype = "s0_out"\nname = "s0out"\nmeter = "sim"\nchip = "software:absent"\n'
        'line = "GPIO23"',
        '[[modules]]\ntype = "relay"\nname = "contactor"\nmeter = "sim"\n'
        'chip = "software:absent"\nline = "GPIO18"',
        '[[modules]]\ntype = "tariff_input"\nname = "tariff"\nmeter = "sim"\n'
        'chip = "software:absent"\nlines = ["GPIO5"]',
        # The cluster roles (MQTT 5 shared subscriptions): a decode worker and an engine feed.
        '[[modules]]\ntype = "decode_worker"\nname = "worker"\n'
        '[[modules.meters]]\nid = "87654321"\nmeter = "wmbus"',
        '[[modules]]\ntype = "meter_feed"\nname = "feed"\nmeters = ["wmbus"]',
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _emulators(work: Path) -> Iterator[tuple[dict[str, int], Path]]:
    processes: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    log = (work / "emulators.log").open("ab")
    try:
        for name, arguments in EMULATORS.items():
            port = free_port()
            ports[name] = port
            argv = [a.format(port=port) for a in arguments]
            processes.append(
                subprocess.Popen([str(GATEWAY), "simulate", *argv], stdout=log, stderr=log)
            )
        pty = work / "ttyZWAVE"
        processes.append(
            subprocess.Popen(
                [str(GATEWAY), "simulate", "zwave", "--pty", str(pty)], stdout=log, stderr=log
            )
        )
        for port in ports.values():
            wait_for_port(port, timeout_s=20)
        deadline = time.monotonic() + 20
        while not pty.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield ports, pty
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _communicating(http_port: int | None) -> list[str]:
    """The modules that have heard their device (the gateway's own health API)."""
    if http_port is None:
        return []
    url = f"http://127.0.0.1:{http_port}/api/v1/health"
    with urllib.request.urlopen(url, timeout=5) as answer:
        health = json.load(answer)
    return sorted(m["name"] for m in health.get("modules", []) if m.get("communicating"))


def _one_run(
    config: Path | None, work: Path, idle_s: float, http_port: int | None
) -> tuple[float, int, str, list[str]]:
    """(seconds to READY, RSS kB after idle_s, the STATUS line, modules heard) of one start."""
    address = str(work / f"notify-{time.monotonic_ns()}.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(READY_TIMEOUT_S)
        argv = [str(GATEWAY), "run"] + (["--config", str(config)] if config else [])
        env = {**os.environ, "NOTIFY_SOCKET": address}
        with (work / "gateway.log").open("ab") as log:
            start = time.perf_counter()
            process = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=work)
        try:
            status = ""
            while True:
                message = sock.recv(4096).decode()
                fields = dict(line.split("=", 1) for line in message.splitlines() if "=" in line)
                if fields.get("READY") == "1":
                    ready_s = time.perf_counter() - start
                    status = fields.get("STATUS", "")
                    break
            time.sleep(idle_s)
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited ({process.returncode}); see gateway.log")
            rss = _rss_kb(process.pid)
            heard = _communicating(http_port)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return ready_s, rss, status, heard


def measure(runs: int, idle_s: float) -> dict[str, Any]:
    """Both configs: every module type, and the embedded default."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-", dir=SCRATCH) as folder:
        work = Path(folder)
        broker = Broker(work)
        broker.start()
        try:
            with _emulators(work) as (ports, pty):
                results: dict[str, Any] = {}
                config = work / "every-module.toml"
                http_port = free_port()
                config.write_text(_config(work / "data", broker.port, http_port, ports, pty))
                cases = (("every module type", config, http_port), ("default", None, None))
                for name, path, port in cases:
                    ready: list[float] = []
                    rss: list[int] = []
                    status = ""
                    heard: list[str] = []
                    for _ in range(runs):
                        seconds, kb, status, heard = _one_run(path, work, idle_s, port)
                        ready.append(seconds)
                        rss.append(kb)
                    results[name] = {
                        "ready_s": statistics.median(ready),
                        "ready_runs_s": ready,
                        "idle_rss_mb": max(rss) / 1024,
                        "status": status,
                        "communicating": heard,
                    }
        finally:
            broker.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-s", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = measure(args.runs, args.idle_s)
    for name, row in results.items():
        print(
            f"{name:20} READY in {row['ready_s'] * 1000:,.0f} ms, idle RSS "
            f"{row['idle_rss_mb']:.1f} MB; heard: {', '.join(row['communicating']) or '-'}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
