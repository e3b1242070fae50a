"""``make bench``: every bench, then bench/RESULTS.md (tables) and bench/results.json (all figures).

Run: ``.venv/bin/python -m bench [--quick] [--skip NAME ...] [--no-peers]``

Sections, in order: codecs on the vectors vs peers (bench.codecs), the peer benches on generated
inputs (bench.mbus_decode, bench.dlms_dsmr, bench.wmbus_decode), end to end with mosquitto
(bench.e2e, both event loops), MQTT outbox throughput (bench.mqtt_throughput), start-up and idle
RSS (bench.startup), engine load and SD card bytes (bench.engine_load), Raspberry Pi terms
(bench.pi). Defaults take a few minutes on two cores; ``--quick`` a minute or two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    codecs,
    dlms_dsmr,
    e2e,
    engine_load,
    mbus_decode,
    mqtt_throughput,
    peers,
    pi,
    startup,
    wmbus_decode,
)
from bench.vectors import PROTOCOLS

HERE = Path(__file__).resolve().parent
SECTIONS = ("codecs", "peers", "e2e", "mqtt", "startup", "engine", "pi")
PI_HEADROOM = 0.5  # plan a Pi's core at half load: room for bursts, the broker, the web page


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "codec_s": 0.2,
            "rounds": 10,
            "wmbus_s": 0.2,
            "e2e": [(10, "uvloop"), (100, "uvloop"), (100, "asyncio")],
            "e2e_step": {"nominal_s": 11.0, "step_s": 2.0, "max_steps": 5, "start_rate": 1000},
            "mqtt_messages": 500,
            "startup": (1, 3.0),
            "hours": 0.25,
        }
    return {
        "codec_s": 1.0,
        "rounds": 50,
        "wmbus_s": 1.0,
        "e2e": [(10, "uvloop"), (100, "uvloop"), (1000, "uvloop"), (100, "asyncio")],
        "e2e_step": {"nominal_s": 11.0, "step_s": 5.0, "max_steps": 8, "start_rate": 1000},
        "mqtt_messages": 2000,
        "startup": (3, 5.0),
        "hours": 2.0,
    }


def run_all(quick: bool, skip: set[str], with_peers: bool) -> dict[str, Any]:
    """Every section not skipped; their figures by section."""
    s = _settings(quick)
    install = None if with_peers else False
    jobs: dict[str, Callable[[], Any]] = {
        "codecs": lambda: [
            codecs.measure(
                p,
                s["codec_s"],
                install=install,
                with_peers=with_peers,
                count=with_peers and not quick and shutil.which("valgrind") is not None,
            )
            for p in PROTOCOLS
        ],
        "peers": lambda: {
            "mbus_rsp_ud": mbus_decode.measure(s["rounds"] * 4, install=install),
            "dlms_dsmr": dlms_dsmr.measure(s["rounds"], install=install),
            "wmbus": wmbus_decode.measure(s["wmbus_s"], install=install),
        },
        "e2e": lambda: [e2e.run(n, loop, **s["e2e_step"]) for n, loop in s["e2e"]],
        "mqtt": lambda: [
            vars(r) | {"rate": r.rate, "cpu_per_1000": r.cpu_per_1000}
            for r in mqtt_throughput.measure(s["mqtt_messages"], ["asyncio", "uvloop"])
        ],
        "startup": lambda: startup.measure(*s["startup"]),
        "engine": lambda: engine_load.run(s["hours"], [1, 10], [900.0, 5.0]),
        "pi": lambda: pi.measure(quick),
    }
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "host": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "timings_s": {},
    }
    for name in SECTIONS:
        if name in skip:
            continue
        print(f"== {name}", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            results[name] = jobs[name]()
        except Exception as err:  # one broken section must not hide the others
            print(f"{name} failed: {err}", file=sys.stderr)
            results[name] = {"error": f"{type(err).__name__}: {err}"}
        results["timings_s"][name] = round(time.monotonic() - start, 1)
    return results


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


# Markdown ---------------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def markdown(r: dict[str, Any]) -> str:
    """bench/RESULTS.md from the figures."""
    host = r["host"]
    out = [
        "# meter-gateway: bench results",
        "",
        f"Measured {r['when']} by `make bench`{' --quick' if r['quick'] else ''} on "
        f"{host['cpu']} ({host['cores']} cores), Python {host['python']}, {host['platform']}. "
        "Rates are one core of this host; the Raspberry Pi section carries them over. "
        "Regenerate with `make bench`; every figure is also in bench/results.json.",
        "",
    ]
    for name, render in (
        ("codecs", _codecs_md),
        ("peers", _peers_md),
        ("e2e", _e2e_md),
        ("mqtt", _mqtt_md),
        ("startup", _startup_md),
        ("engine", _engine_md),
        ("pi", _pi_md),
    ):
        section = r.get(name)
        if section is None:
            continue
        if isinstance(section, dict) and "error" in section:
            out += [f"## {name}", "", f"Failed: {section['error']}", ""]
            continue
        out += render(section, r)
    return "\n".join(out).rstrip() + "\n"


def _codecs_md(rows: list[dict[str, Any]], _r: dict[str, Any]) -> list[str]:
    out = [
        "## Codecs on the real vectors, ours vs each Python peer",
        "",
        "Every frame of tests/fixtures/vectors/ for the protocol, through "
        "`gateway.registry.decoder(protocol)` as `meter-gateway decode` runs it. Against a "
        "peer, both sides decode exactly the inputs both accept, in whole passes of about the "
        "same time, in the same run (peers in bench/.venv, their own process). Ratio > 1: we are "
        'faster. "Accepted" means decoded without an error, not decoded right.',
        "",
        "| protocol | inputs | we accept | ours, all accepted (frames/s) | peer | peer accepts "
        "| common | ours (frames/s) | peer (frames/s) | ratio | ratio by instructions | goal |",
        "|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        lead = (
            f"| {row['protocol']} | {row['inputs']} | {row['ours_accepted']} "
            f"| {_n(row['ours_fps'])} "
        )
        if not row["peers"]:
            out.append(lead + "| no Python peer | | | | | | | |")
        for peer, p in row["peers"].items():
            if "error" in p:
                out.append(lead + f"| {peer} | {p['error']} | | | | | | |")
                continue
            goal = ""
            if "goal" in p:
                goal = f">= {p['goal']:g}x, {'met' if p['goal_met'] else 'not met'}"
            out.append(
                lead + f"| {peer} {p['version']} | {p['accepted']} | {p['common']} "
                f"| {_n(p.get('ours_fps'))} | {_n(p.get('peer_fps'))} "
                f"| {_n(p.get('ratio'), 2, 'x')} | {_n(p.get('ratio_ir'), 2, 'x')} | {goal} |"
            )
            lead = "| | | | "
    out += [
        "",
        "pymbusparser is Rust (m-bus-parser) behind Python bindings. pyMeterBus decrypts only "
        "TPL mode 5 and leaves other encrypted payloads undecoded without an error; the "
        "iec62056-21 package parses single messages by slicing (whole sign-on + readout "
        "sessions are refused, so only short messages are common); iec62056 is a lark grammar "
        "for readouts. Z-Wave has no Python peer (zwave-js is JavaScript).",
        "",
    ]
    return out


def _peers_md(section: dict[str, Any], _r: dict[str, Any]) -> list[str]:
    out = ["## Generated inputs vs peers", ""]
    m = section["mbus_rsp_ud"]
    if m.get("peer"):
        out += [
            f"Wired M-Bus RSP_UD vectors ({m['common']} of {m['frames']} decoded by both): "
            f"ours {_n(m['ours_fps'])} frames/s, {m['peer']} {_n(m['peer_fps'])} frames/s, "
            f"ratio {m['ratio']:.2f}x.",
            "",
        ]
    out += [
        "DLMS HAN pushes and DSMR telegrams (bench/dlms_dsmr.py): `decode` is our whole decode "
        "(OBIS names, scalers, units); `parse` is the same work as dlms-cosem (frame, decipher, "
        "A-XDR).",
        "",
        "| set | inputs | common | ours decode (frames/s) | ours parse (frames/s) | peer | "
        "peer (frames/s) | decode ratio | parse ratio |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    for name, row in section["dlms_dsmr"].items():
        out.append(
            f"| {name} | {row['inputs']} | {row.get('common', 0)} | {_n(row.get('ours_fps'))} "
            f"| {_n(row.get('parse_fps'))} | {row['peer']} {row.get('version', '')} "
            f"| {_n(row.get('peer_fps'))} | {_n(row.get('ratio'), 2, 'x')} "
            f"| {_n(row.get('parse_ratio'), 2, 'x')} |"
        )
    out += [
        "",
        "wM-Bus (bench/wmbus_decode.py): telegrams/s on one core, codec alone and through the "
        "module's router, against what one radio channel can carry.",
        "",
        "| set | bytes on air | codec/s | module/s | T1 channel/s | T1 ALOHA/s | C1 channel/s "
        "| pymbusparser |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for name, row in section["wmbus"].items():
        found = row.get("pymbusparser")
        if found is None:
            peer = "not installed"
        elif "rate" in found:
            peer = f"{found['rate']:,.0f}/s ({found['rate'] / row['codec_per_s']:.1f}x our codec)"
        else:
            peer = f"decodes {found['ok']}/{found['of']}: {str(found['error'])[:70]}"
        out.append(
            f"| {name} | {row['on_air_bytes']:.0f} | {_n(row['codec_per_s'])} "
            f"| {_n(row['module_per_s'])} | {_n(row['t1_capacity_per_s'])} "
            f"| {_n(row['t1_aloha_per_s'])} | {_n(row['c1_capacity_per_s'])} | {peer} |"
        )
    out.append("")
    return out


def _e2e_md(rows: list[dict[str, Any]], _r: dict[str, Any]) -> list[str]:
    out = [
        "## End to end: sim meters -> engine -> memory outbox -> mosquitto -> subscriber",
        "",
        "The production Gateway (MQTT with discovery, HTTP on) in one process, a real mosquitto "
        "and a subscriber process on loopback (bench/e2e.py). Meters sample at 1 Hz of meter "
        f"time; publish_interval_s is the production {rows[0]['publish_interval_s']:.0f} s, so "
        "each sample's state leaves from memory at once; the store sees only checkpoints. "
        "Sustained: the highest pace (x1.5 steps) at which every sample asked for was taken and "
        "the outbox held no more than one message per meter at the end of the step. CPU is the "
        "gateway process per 1,000 samples at that pace (the bench meters' own share given "
        "apart). Latency at 1 Hz: sample -> broker is from `Gateway.submit` to arrival at the "
        "subscriber; flush -> broker is from the last checkpoint (not on the path any more).",
        "",
        "| meters | loop | sustained samples/s | CPU s / 1,000 samples | of which sim meters "
        "| peak RSS | sample->broker p50 / p99 | flush->broker p50 / p99 | loop lag p99 at 1 Hz |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        best, nominal = row["sustained"], row["nominal"]
        lat = nominal["latency"]
        out.append(
            f"| {row['meters']:,} | {row['loop']} | {_n(best['samples_per_s'])} "
            f"| {_n(best['cpu_s_per_1000'], 3)} | {row['sim_cpu_us_per_sample'] / 1000:.3f} "
            f"| {row['peak_rss_mb']:.0f} MB "
            f"| {_ms(lat['sample_to_broker_p50_s'])} / {_ms(lat['sample_to_broker_p99_s'])} "
            f"| {_ms(lat['flush_to_broker_p50_s'])} / {_ms(lat['flush_to_broker_p99_s'])} "
            f"| {_ms(nominal['loop_lag_p99_s'])} |"
        )
    out += [
        "",
        "Ramp steps (samples/s asked -> taken, CPU share of one core, outbox at the end):",
        "",
    ]
    for row in rows:
        steps = ", ".join(
            f"{s['target_per_s']:,.0f}->{s['samples_per_s']:,.0f} ({s['cpu_share']:.0%}, "
            f"{s['outbox_waiting']}{'' if s['kept_up'] else ', behind'})"
            for s in row["steps"][1:]
        )
        out.append(f"- {row['meters']:,} meters, {row['loop']}: {steps}")
    out.append("")
    return out


def _mqtt_md(rows: list[dict[str, Any]], _r: dict[str, Any]) -> list[str]:
    out = [
        "## MQTT outbox -> mosquitto (bench/mqtt_throughput.py)",
        "",
        "live: one sample, one flush (registers + state message in one transaction, fsync), "
        "one QoS 1 publish per message, the worst case; events: one fsync each; backlog: a "
        "queue drained after connect.",
        "",
        "| scenario | loop | messages | msg/s | CPU s / 1,000 |",
        "|---|---|--:|--:|--:|",
    ]
    out += [
        f"| {r['scenario']} | {r['loop']} | {r['messages']} | {_n(r['rate'])} "
        f"| {r['cpu_per_1000']:.3f} |"
        for r in rows
    ]
    out.append("")
    return out


def _startup_md(section: dict[str, Any], _r: dict[str, Any]) -> list[str]:
    out = [
        "## Start-up and idle memory (bench/startup.py)",
        "",
        "`meter-gateway run` as systemd runs it, READY=1 read from our own NOTIFY_SOCKET; RSS "
        'after a few idle seconds. "Every module type": sim, mbus, wmbus, rs485 (KMP), '
        "optical and tcpip (IEC 62056-21), tcpip (DLMS), p1, zwave and mqtt_switch each on its "
        "emulator, plus s0, s0_out, relay and tariff_input, which load and wait for a GPIO "
        "chip this host lacks.",
        "",
        "| config | READY after (median) | idle RSS | modules heard |",
        "|---|--:|--:|---|",
    ]
    for name, row in section.items():
        out.append(
            f"| {name} | {_ms(row['ready_s'])} | {row['idle_rss_mb']:.1f} MB "
            f"| {', '.join(row['communicating']) or '-'} |"
        )
    out.append("")
    return out


def _engine_md(section: dict[str, Any], _r: dict[str, Any]) -> list[str]:
    out = [
        "## Engine and SD card (bench/engine_load.py)",
        "",
        f"One 1 Hz three-phase meter with every engine feature on: "
        f"{_n(section['engine_samples_per_s'])} samples/s on one core "
        f"({section['engine_cpu_us_per_sample']:.0f} µs each). SQLite bytes written per day "
        "(/proc/self/io write_bytes over one hour of 1 Hz meter time, extrapolated; sync() after "
        "each checkpoint, as the kernel's write-back would between checkpoints minutes apart):",
        "",
        "| meters | checkpoint every | MB written per day |",
        "|--:|--:|--:|",
    ]
    for row in section.get("disk", []):
        out.append(
            f"| {row['meters']} | {row['checkpoint_s']:g} s | {row['bytes_per_day'] / 1e6:,.2f} |"
        )
    away = section.get("outage")
    if away:
        out += [
            "",
            f"Broker away: {away['written_bytes'] / 1e6:,.2f} MB written for "
            f"{away['payload_bytes'] / 1e6:,.2f} MB of state payloads waiting "
            f"({away['ratio']:.2f}x; {away['messages']} messages spilled in batches).",
        ]
    return [*out, ""]


def _pi_md(section: dict[str, Any], r: dict[str, Any]) -> list[str]:
    out = ["## On a Raspberry Pi", ""]
    if "error" in section:
        return [*out, section["error"], ""]
    out += [
        "Counted with valgrind's callgrind on this host's CPython (bench/pi.py): "
        f"{section['engine_instructions_per_sample']:,.0f} instructions per engine sample, "
        f"{section['mbus_instructions_per_frame']:,.0f} per wired M-Bus frame decoded; this "
        f"host runs them at {section['host_instructions_per_s'] / 1e9:.1f} G instructions/s. "
        "A Pi core is modelled as clock x IPC (IPC assumed: 1.0 for the A72, 0.6 for the "
        "A53; aarch64 taken to need as many instructions as x86-64). Cross-check: the n-body "
        f"benchmark runs {section['nbody_pi4_factor']:.1f}x slower on a published Pi 4 run "
        "than here (bench/pi.py names the source), against the model's "
        f"{next(iter(section['pis'].values()))['slower_than_host']:.1f}x.",
        "",
        f"Meters one Pi carries, planning its core at {PI_HEADROOM:.0%} load (the gateway is "
        "one process on one core; mosquitto and the OS take the others). The gateway's CPU "
        "is fitted over every end-to-end ramp step that kept up (all meter counts, uvloop) as "
        "a cost per sample plus a cost per meter and second (flushes, availability, MQTT "
        "upkeep), the bench meters' own share taken out, then carried over by the factor:",
        "",
    ]
    model = _cpu_model(r)
    if model is not None:
        per_sample, per_meter, meters_run = model
        out += [
            f"Here: {per_sample * 1e6:,.0f} µs per sample + {per_meter * 1e6:,.0f} µs per meter "
            f"and second (runs of up to {meters_run:,} meters).",
            "",
        ]
    out += [
        "| board | slower than here | engine µs / sample | M-Bus µs / frame "
        "| meters at 1 Hz | meters every 10 s |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, board in section["pis"].items():
        at_1hz = at_10s = None
        if model is not None:
            per_sample, per_meter, _ = model
            budget = PI_HEADROOM / board["slower_than_host"]
            at_1hz = budget / (per_sample + per_meter)
            at_10s = budget / (per_sample / 10 + per_meter)
        out.append(
            f"| {name} | {board['slower_than_host']:.1f}x | {board['engine_us_per_sample']:,.0f} "
            f"| {board['mbus_us_per_frame']:,.0f} | {_n(at_1hz)} | {_n(at_10s)} |"
        )
    out += [
        "",
        "A real adapter adds its decode per telegram (the codec tables above, times the same "
        "factor): an M-Bus or wM-Bus meter every 10 s costs little, a DSMR P1 telegram every "
        "second about as much as the engine. The factor moves with this host's load (it is "
        "shared); the instruction counts do not.",
        "",
    ]
    return out


def _cpu_model(r: dict[str, Any]) -> tuple[float, float, int] | None:
    """(CPU s per sample, CPU s per meter-second, largest run's meters), fitted by least squares
    as cpu share = a x samples/s + b x meters + c over the steps that kept up in every uvloop
    run (several meter counts keep a and b apart), bench meters' own share taken out of a."""
    rows = [x for x in r.get("e2e", []) if isinstance(x, dict) and x.get("loop") == "uvloop"]
    points = [
        (s["samples_per_s"], float(row["meters"]), s["cpu_share"])
        for row in rows
        for s in row["steps"]
        if s["kept_up"] and s["cpu_share"] is not None
    ]
    if len({m for _, m, _ in points}) < 2 or len(points) < 4:
        return None
    # Normal equations of the three-parameter fit.
    columns = [[p[0] for p in points], [p[1] for p in points], [1.0] * len(points)]
    ys = [p[2] for p in points]
    matrix = [[sum(x * y for x, y in zip(c1, c2, strict=True)) for c2 in columns] for c1 in columns]
    rhs = [sum(x * y for x, y in zip(c, ys, strict=True)) for c in columns]
    solution = _solve3(matrix, rhs)
    if solution is None:
        return None
    per_sample, per_meter, _fixed = solution
    sim = max(row["sim_cpu_us_per_sample"] for row in rows) / 1e6
    return max(per_sample - sim, 0.0), max(per_meter, 0.0), max(int(x["meters"]) for x in rows)


def _solve3(m: list[list[float]], v: list[float]) -> tuple[float, float, float] | None:
    def det(a: list[list[float]]) -> float:
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    d = det(m)
    if abs(d) < 1e-30:
        return None
    out = []
    for k in range(3):
        replaced = [[v[i] if j == k else m[i][j] for j in range(3)] for i in range(3)]
        out.append(det(replaced) / d)
    return out[0], out[1], out[2]


def main(argv: list[str] | None = None) -> int:
    """Run, write RESULTS.md and results.json, print where they are."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, a minute or two")
    parser.add_argument("--skip", action="append", default=[], choices=SECTIONS)
    parser.add_argument("--no-peers", action="store_true", help="do not install or run peers")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the two files")
    args = parser.parse_args(argv)
    if args.no_peers:
        os.environ[peers.NO_INSTALL_ENV] = "1"
    results = run_all(args.quick, set(args.skip), not args.no_peers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "RESULTS.md").write_text(markdown(results))
    print(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
