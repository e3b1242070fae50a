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
running with no visitor, VmRSS again after a first visit (the page, its files and the API calls
it starts with; the HTTP server is loaded for the first client, so this is the memory of a
gateway someone has looked at), and the same for the embedded default config (one sim meter,
the page on 127.0.0.1, here on a free port rather than 8382).
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
from importlib import resources
from pathlib import Path
from typing import Any

from bench.peers import SCRATCH
from tests.support.processes import GATEWAY, Broker, free_port, wait_for_port

READY_TIMEOUT_S = 60.0
# What a browser asks for when it first opens the page.
FIRST_VISIT = ("/", "/static/app.js", "/static/style.css", "/api/v1/info", "/api/v1/meters")
# After the visit, this long for its connections to settle before RSS is read again.
VISIT_SETTLE_S = 1.0
# The embedded default's page (gateway/default.toml): the bench gives it a free port instead, so
# another gateway on this host (another bench, a `make run`) can neither block nor answer it.
DEFAULT_HTTP_LINE = "port = 8382\n"
# /proc/net/tcp's state code of a listening socket.
TCP_LISTEN = "0A"
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


def _default_config(http_port: int) -> str:
    """The embedded default config, word for word but for the HTTP port."""
    text = resources.files("gateway").joinpath("default.toml").read_text(encoding="utf-8")
    if DEFAULT_HTTP_LINE not in text:
        raise RuntimeError(f"gateway/default.toml no longer has {DEFAULT_HTTP_LINE!r}")
    return text.replace(DEFAULT_HTTP_LINE, f"port = {http_port}\n")


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


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on TCP ``port`` (IPv4)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd) in inodes:
                return True
    return False


def _communicating(http_port: int) -> list[str]:
    """The modules that have heard their device (the gateway's own health API)."""
    url = f"http://127.0.0.1:{http_port}/api/v1/health"
    with urllib.request.urlopen(url, timeout=5) as answer:
        health = json.load(answer)
    return sorted(m["name"] for m in health.get("modules", []) if m.get("communicating"))


def _visit(http_port: int) -> None:
    """A first visit to the page: the page, its files and the API calls it starts with."""
    for path in FIRST_VISIT:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}", timeout=30) as answer:
            answer.read()


def _one_run(config: Path, work: Path, idle_s: float, http_port: int) -> dict[str, Any]:
    """Seconds to READY, RSS kB idle and after a first visit, the STATUS line and the modules
    heard, of one start."""
    address = str(work / f"notify-{time.monotonic_ns()}.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(READY_TIMEOUT_S)
        argv = [str(GATEWAY), "run", "--config", str(config)]
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
            idle = _rss_kb(process.pid)
            _visit(http_port)
            time.sleep(VISIT_SETTLE_S)
            visited = _rss_kb(process.pid)
            heard = _communicating(http_port)
            # A free port can be taken meanwhile: make sure it was this gateway that answered.
            if not _listens(process.pid, http_port):
                raise RuntimeError(f"port {http_port} is not this gateway's; see gateway.log")
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return {
        "ready_s": ready_s,
        "idle_kb": idle,
        "visited_kb": visited,
        "status": status,
        "heard": heard,
    }


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
                default = work / "default.toml"
                default_port = free_port()
                default.write_text(_default_config(default_port))
                cases = (
                    ("every module type", config, http_port),
                    ("default", default, default_port),
                )
                for name, path, port in cases:
                    runs_done = [_one_run(path, work, idle_s, port) for _ in range(runs)]
                    last = runs_done[-1]
                    results[name] = {
                        "ready_s": statistics.median(r["ready_s"] for r in runs_done),
                        "ready_runs_s": [r["ready_s"] for r in runs_done],
                        "idle_rss_mb": max(r["idle_kb"] for r in runs_done) / 1024,
                        "visited_rss_mb": max(r["visited_kb"] for r in runs_done) / 1024,
                        "status": last["status"],
                        # The default's modules (one sim meter) hear nothing over a wire.
                        "communicating": last["heard"] if path is config else [],
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
            f"{row['idle_rss_mb']:.1f} MB (after a first visit {row['visited_rss_mb']:.1f} MB);"
            f" heard: {', '.join(row['communicating']) or '-'}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
