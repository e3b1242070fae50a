"""``make bench``: every bench, then bench/RESULTS.md (tables) and bench/results.json (all figures).

Run: ``.venv/bin/python -m bench [--quick] [--skip NAME ...] [--no-peers]``

Sections, in order: codecs on the vectors vs peers (bench.codecs), the peer benches on generated
inputs (bench.mbus_decode, bench.dlms_dsmr, bench.wmbus_decode), the same codec figures and the
engine's instruction count again on the compiled build (scripts/compile-codecs --into), end to
end with mosquitto (bench.e2e, both event loops), MQTT outbox throughput (bench.mqtt_throughput),
start-up and idle RSS (bench.startup), engine load (bench.engine_load), the whole process's SD
card bytes (bench.sd_card), Raspberry Pi terms (bench.pi). RESULTS.md opens with issue 20's and
22's goals read off this one run, and ends with bench/FINDINGS.md, the hand-kept account of
what stands in the way of the goals not met and of the benches run on their own. Defaults take
about half an hour on two cores; ``--quick`` a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
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
    sd_card,
    startup,
    wmbus_decode,
)
from bench.vectors import PROTOCOLS
from gateway.config import GatewaySection

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECTIONS = ("codecs", "peers", "compiled", "e2e", "mqtt", "startup", "engine", "sd_card", "pi")
FINDINGS = HERE / "FINDINGS.md"
COMPILED_TREE = ROOT / "build" / "bench-compiled"
# The SD card section runs the default checkpoint interval (the figure a user gets).
CHECKPOINT_S = GatewaySection().checkpoint_interval_s
CANNOT_COMPILE = 3  # scripts/compile-codecs --into: no C compiler or no mypyc on this host
PI_HEADROOM = 0.5  # plan a Pi's core at half load: room for bursts, the broker, the web page
# Issue 22's goals (the codec ratios are bench.codecs.GOALS and bench.dlms_dsmr.GOALS) and
# issue 20's, which the goals table reads this run's figures against.
ENGINE_INSTRUCTIONS_GOAL = 200_000
ENGINE_RATE_GOAL = 50_000  # samples/s on one core
E2E_METERS_GOAL = 1000
E2E_RATE_GOAL = 20_000  # samples/s, end to end, one core
LAG_GOAL_S = 0.050
PI_ZERO = "Raspberry Pi Zero 2 W (A53 1.0 GHz)"
PI_ZERO_METERS_GOAL = 1000
RSS_GOALS_MB = (40, 50)  # default config, every module type
READY_GOAL_S = 0.250
SD_CARD_GOALS_MB = {1: 1.0, 10: 5.0}  # MB written per day by the whole process
SPILL_RATIO_GOAL = 1.5  # bytes written per payload byte waiting, the broker away
LATENCY_METERS = 100
LATENCY_GOAL_S = 0.100


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
            "sd_card": {"hours": 0.5, "speed": 60.0, "checkpoint_s": CHECKPOINT_S},
        }
    return {
        "codec_s": 1.0,
        "rounds": 50,
        "wmbus_s": 1.0,
        "e2e": [(10, "uvloop"), (100, "uvloop"), (1000, "uvloop"), (100, "asyncio")],
        "e2e_step": {"nominal_s": 11.0, "step_s": 5.0, "max_steps": 8, "start_rate": 1000},
        # 2,000 messages made the live run under a second, which the host's noise swamped.
        "mqtt_messages": 10000,
        "startup": (3, 5.0),
        "hours": 2.0,
        # Six meter hours take in the filing of intervals, every few hours (two hours mostly
        # miss it and read low); x120 keeps that to three minutes a run.
        "sd_card": {"hours": 6.0, "speed": 120.0, "checkpoint_s": CHECKPOINT_S},
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
        "compiled": lambda: compiled(s, with_peers=with_peers, quick=quick),
        "e2e": lambda: [e2e.run(n, loop, **s["e2e_step"]) for n, loop in s["e2e"]],
        "mqtt": lambda: [
            r.figures() for r in mqtt_throughput.measure(s["mqtt_messages"], ["asyncio", "uvloop"])
        ],
        "startup": lambda: startup.measure(*s["startup"]),
        "engine": lambda: engine_load.run(s["hours"], [1, 10], [900.0, 5.0]),
        "sd_card": lambda: [sd_card.measure(n, **s["sd_card"]) for n in (1, 10)],
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


def _in_tree(tree: Path, code: str) -> Any:
    """Run ``code`` (which prints one JSON document last) with ``tree`` first on the path."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env=os.environ | {"PYTHONPATH": str(tree)},
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def compiled(s: dict[str, Any], *, with_peers: bool, quick: bool) -> dict[str, Any]:
    """The codec and engine figures again on a copy of this checkout built with mypyc.

    A host that cannot compile fails the section loudly: the goals read off the compiled
    build would otherwise go missing without a word.
    """
    built = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compile-codecs"), "--into", str(COMPILED_TREE)],
        check=False,
    )
    if built.returncode == CANNOT_COMPILE:
        raise RuntimeError("no compiled build on this host (scripts/compile-codecs says why)")
    if built.returncode != 0:
        raise RuntimeError(f"scripts/compile-codecs --into failed with status {built.returncode}")
    peers_venv = COMPILED_TREE / "bench" / ".venv"
    if peers.VENV.exists() and not peers_venv.exists():
        peers_venv.symlink_to(peers.VENV, target_is_directory=True)  # peers installed once
    count = with_peers and not quick and shutil.which("valgrind") is not None
    protocols = json.dumps(list(PROTOCOLS))
    result: dict[str, Any] = {
        "extensions": len(list((COMPILED_TREE / "modules").rglob("*.so")))
        + len(list((COMPILED_TREE / "gateway").rglob("*.so"))),
        "codecs": _in_tree(
            COMPILED_TREE,
            "import json, sys\n"
            "from bench import codecs\n"
            "rows = [codecs.measure(p, "
            f"{s['codec_s']!r}, install=False, with_peers={with_peers!r}, count={count!r}) "
            f"for p in {protocols}]\n"
            "print(json.dumps(rows))",
        ),
    }
    if with_peers:
        result["dlms_dsmr"] = _in_tree(
            COMPILED_TREE,
            "import json\nfrom bench import dlms_dsmr\n"
            f"print(json.dumps(dlms_dsmr.measure({s['rounds']!r}, install=False)))",
        )
    result["engine"] = _in_tree(
        COMPILED_TREE,
        "import json\nfrom bench import engine_load\n"
        f"print(json.dumps(engine_load.engine_rate({s['hours']!r})))",
    )
    if shutil.which("valgrind") is not None:
        result["pi"] = _in_tree(
            COMPILED_TREE,
            f"import json\nfrom bench import pi\nprint(json.dumps(pi.measure({quick!r})))",
        )
    return result


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
    out += _goals_md(r)
    for name, render in (
        ("codecs", _codecs_md),
        ("peers", _peers_md),
        ("compiled", _compiled_md),
        ("e2e", _e2e_md),
        ("mqtt", _mqtt_md),
        ("startup", _startup_md),
        ("engine", _engine_md),
        ("sd_card", _sd_card_md),
        ("pi", _pi_md),
    ):
        section = r.get(name)
        if section is None:
            continue
        if isinstance(section, dict) and "error" in section:
            out += [f"## {name}", "", f"Failed: {section['error']}", ""]
            continue
        out += render(section, r)
    if FINDINGS.exists():
        out += ["", FINDINGS.read_text().rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"


# Goals ------------------------------------------------------------------------------------------

Goal = tuple[str, str, str, bool | None]  # what, measured here, goal, met (None: not measured)


def _section(r: dict[str, Any], name: str) -> Any:
    """A section's figures, or None when it was skipped or failed."""
    found = r.get(name)
    return None if found is None or (isinstance(found, dict) and "error" in found) else found


def _peer_ratio(rows: Any, protocol: str, peer: str) -> float | None:
    for row in rows or ():
        if row["protocol"] == protocol and "ratio" in row["peers"].get(peer, {}):
            return float(row["peers"][peer]["ratio"])
    return None


def _ratio_goal(what: str, pure: float | None, built: float | None, goal: float) -> Goal:
    shown = [f"{v:.2f}x {b}" for v, b in ((pure, "pure"), (built, "compiled")) if v is not None]
    found = [v for v in (pure, built) if v is not None]
    met = max(found) >= goal if found else None
    return what, ", ".join(shown) or "-", f">= {goal:g}x", met


def goals(r: dict[str, Any]) -> list[Goal]:
    """Issue 22's table and issue 20's figures, each read off this run (a codec goal counts as
    met when either build meets it: the compiled build is what a Pi with a compiler runs)."""
    rows: list[Goal] = []
    pure_codecs = _section(r, "codecs")
    built = _section(r, "compiled") or {}
    built_codecs = built.get("codecs")
    for protocol, peer in codecs.GOALS:
        rows.append(
            _ratio_goal(
                f"{protocol} decode vs {peer}",
                _peer_ratio(pure_codecs, protocol, peer),
                _peer_ratio(built_codecs, protocol, peer),
                codecs.GOALS[protocol, peer],
            )
        )
    pure_push = (_section(r, "peers") or {}).get("dlms_dsmr", {}).get("dlms gcm", {})
    built_push = (built.get("dlms_dsmr") or {}).get("dlms gcm", {})
    rows.append(
        _ratio_goal(
            "DLMS push (GCM) vs dlms-cosem",
            pure_push.get("ratio"),
            built_push.get("ratio"),
            dlms_dsmr.GOALS["dlms gcm"],
        )
    )
    pi_pure, pi_built = _section(r, "pi") or {}, built.get("pi") or {}
    per_sample: list[tuple[float, str]] = [
        (float(pi["engine_instructions_per_sample"]), name)
        for pi, name in ((pi_pure, "pure"), (pi_built, "compiled"))
        if pi.get("engine_instructions_per_sample") is not None
    ]
    rows.append(
        (
            "engine sample, instructions",
            ", ".join(f"{v:,.0f} {name}" for v, name in per_sample) or "-",
            f"<= {ENGINE_INSTRUCTIONS_GOAL:,}",
            min(v for v, _ in per_sample) <= ENGINE_INSTRUCTIONS_GOAL if per_sample else None,
        )
    )
    rates: list[tuple[float, str]] = [
        (float(engine["engine_samples_per_s"]), name)
        for engine, name in ((_section(r, "engine"), "pure"), (built.get("engine"), "compiled"))
        if engine and engine.get("engine_samples_per_s") is not None
    ]
    rows.append(
        (
            "engine samples/s on one core",
            ", ".join(f"{v:,.0f} {name}" for v, name in rates) or "-",
            f">= {ENGINE_RATE_GOAL:,}",
            max(v for v, _ in rates) >= ENGINE_RATE_GOAL if rates else None,
        )
    )
    by_meters = {x["meters"]: x for x in _section(r, "e2e") or () if x["loop"] == "uvloop"}
    big = by_meters.get(E2E_METERS_GOAL)
    if big is not None:
        pace, lag = big["sustained"]["samples_per_s"], big["nominal"]["loop_lag_p99_s"]
        rows.append(
            (
                f"end to end, {E2E_METERS_GOAL:,} meters: samples/s, loop lag p99 at 1 Hz",
                f"{pace:,.0f}, {_ms(lag)}",
                f">= {E2E_RATE_GOAL:,}, <= {_ms(LAG_GOAL_S)}",
                pace >= E2E_RATE_GOAL and lag <= LAG_GOAL_S,
            )
        )
    model = _cpu_model(r)
    zero = (_section(r, "pi") or {}).get("pis", {}).get(PI_ZERO)
    if model is not None and zero is not None:
        per_sample_s, per_meter_s, _ = model
        meters = PI_HEADROOM / zero["slower_than_host"] / (per_sample_s + per_meter_s)
        rows.append(
            (
                "Pi Zero 2 W by instruction counts, meters at 1 Hz",
                f"{meters:,.0f}",
                f">= {PI_ZERO_METERS_GOAL:,}",
                meters >= PI_ZERO_METERS_GOAL,
            )
        )
    start = _section(r, "startup")
    if start is not None:
        default, every = start["default"], start["every module type"]
        rows.append(
            (
                "idle RSS, default / every module type",
                f"{default['idle_rss_mb']:.1f} / {every['idle_rss_mb']:.1f} MB",
                f"<= {RSS_GOALS_MB[0]} / <= {RSS_GOALS_MB[1]} MB",
                default["idle_rss_mb"] <= RSS_GOALS_MB[0]
                and every["idle_rss_mb"] <= RSS_GOALS_MB[1],
            )
        )
        rows.append(
            (
                "READY, default config",
                _ms(default["ready_s"]),
                f"<= {_ms(READY_GOAL_S)}",
                default["ready_s"] <= READY_GOAL_S,
            )
        )
    for row in _section(r, "sd_card") or ():
        goal = SD_CARD_GOALS_MB.get(row["meters"])
        if goal is not None:
            per_day = row["bytes_per_day"] / 1e6
            rows.append(
                (
                    f"SD card, {row['meters']} meter{'s' if row['meters'] > 1 else ''}: "
                    "MB written per day",
                    f"{per_day:,.2f}",
                    f"<= {goal:g}",
                    per_day <= goal,
                )
            )
    away = (_section(r, "engine") or {}).get("outage")
    if away:
        rows.append(
            (
                "broker away: bytes written per payload byte waiting",
                f"{away['ratio']:.2f}x",
                f"<= {SPILL_RATIO_GOAL:g}x",
                away["ratio"] <= SPILL_RATIO_GOAL,
            )
        )
    hundred = by_meters.get(LATENCY_METERS)
    if hundred is not None:
        p99 = hundred["nominal"]["latency"]["sample_to_broker_p99_s"]
        lag = hundred["nominal"]["loop_lag_p99_s"]
        rows.append(
            (
                f"sample -> broker p99 and loop lag p99, {LATENCY_METERS} meters at 1 Hz",
                f"{_ms(p99)}, {_ms(lag)}",
                f"<= {_ms(LATENCY_GOAL_S)}, <= {_ms(LAG_GOAL_S)}",
                None if p99 is None else p99 <= LATENCY_GOAL_S and lag <= LAG_GOAL_S,
            )
        )
    return rows


def _goals_md(r: dict[str, Any]) -> list[str]:
    rows = goals(r)
    out = [
        "## Goals of issues 20 and 22, read off this run",
        "",
        "Each figure below comes from the sections that follow, all of this one run. A codec "
        "goal is met when either build meets it (pure Python, or the compiled build of the "
        'same source). What stands in the way of each goal not met is under "Findings" at '
        "the end.",
        "",
        "| what | measured | goal | status |",
        "|---|---|---|---|",
    ]
    status = {True: "met", False: "not met", None: "not measured"}
    out += [f"| {what} | {got} | {goal} | {status[met]} |" for what, got, goal, met in rows]
    return [*out, ""]


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
        *_codec_table(rows),
        "",
        "pymbusparser is Rust (m-bus-parser) behind Python bindings. pyMeterBus decrypts only "
        "TPL mode 5 and leaves other encrypted payloads undecoded without an error; the "
        "iec62056-21 package parses single messages by slicing (whole sign-on + readout "
        "sessions are refused, so only short messages are common); iec62056 is a lark grammar "
        "for readouts. Z-Wave has no Python peer (zwave-js is JavaScript).",
        "",
    ]
    return out


def _codec_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
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
    return out


def _compiled_md(section: dict[str, Any], _r: dict[str, Any]) -> list[str]:
    out = [
        "## The compiled build: the same codecs and engine built with mypyc",
        "",
        f"scripts/compile-codecs --into build/bench-compiled ({section['extensions']} C "
        "extensions), then the codec bench on the vectors and the DLMS/DSMR bench run again in "
        "that copy, against the same peers, in this run. This is what `make compiled` gives a "
        "Pi with a C compiler; `make run` without one runs the pure-Python source above.",
        "",
        *_codec_table(section["codecs"]),
        "",
    ]
    push = section.get("dlms_dsmr")
    if push:
        out += [*_dlms_dsmr_table(push), ""]
    counted = section.get("pi")
    if counted:
        out += [
            "Counted with callgrind in the compiled copy (bench/pi.py): "
            f"{counted['engine_instructions_per_sample']:,.0f} instructions per engine sample, "
            f"{counted['mbus_instructions_per_frame']:,.0f} per wired M-Bus frame.",
            "",
        ]
    return out


def _dlms_dsmr_table(section: dict[str, Any]) -> list[str]:
    return [
        "| set | inputs | common | ours decode (frames/s) | ours parse (frames/s) | peer "
        "| peer (frames/s) | decode ratio | parse ratio |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|",
    ] + [
        f"| {name} | {row['inputs']} | {row.get('common', 0)} | {_n(row.get('ours_fps'))} "
        f"| {_n(row.get('parse_fps'))} | {row['peer']} {row.get('version', '')} "
        f"| {_n(row.get('peer_fps'))} | {_n(row.get('ratio'), 2, 'x')} "
        f"| {_n(row.get('parse_ratio'), 2, 'x')} |"
        for name, row in section.items()
    ]


def _sd_card_md(rows: list[dict[str, Any]], _r: dict[str, Any]) -> list[str]:
    out = [
        "## The whole process on an SD card (bench/sd_card.py)",
        "",
        "`meter-gateway run` at the default log level, MQTT with discovery to a mosquitto on "
        "loopback, HTTP on, N simulated 1 Hz three-phase meters with every engine feature on; "
        "/proc/PID/io `write_bytes` of the gateway process after its warm-up, over meter hours "
        "run at the speed shown (the checkpoint interval divided by it), extrapolated to a day.",
        "",
        "| meters | checkpoint every | meter hours | speed | MB written per day "
        "| log lines per wall hour |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    out += [
        f"| {row['meters']} | {row['checkpoint_s']:g} s | {row['meter_hours']:.2f} "
        f"| x{row['speed']:g} | {row['bytes_per_day'] / 1e6:,.2f} "
        f"| {row['log_lines_per_wall_hour']:.1f} |"
        for row in rows
    ]
    return [*out, ""]


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
    ]
    out += _dlms_dsmr_table(section["dlms_dsmr"])
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
        "subscriber.",
        "",
        "| meters | loop | sustained samples/s | CPU s / 1,000 samples | of which sim meters "
        "| peak RSS | sample->broker p50 / p99 | loop lag p99 at 1 Hz |",
        "|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        best, nominal = row["sustained"], row["nominal"]
        lat = nominal["latency"]
        out.append(
            f"| {row['meters']:,} | {row['loop']} | {_n(best['samples_per_s'])} "
            f"| {_n(best['cpu_s_per_1000'], 3)} | {row['sim_cpu_us_per_sample'] / 1000:.3f} "
            f"| {row['peak_rss_mb']:.0f} MB "
            f"| {_ms(lat['sample_to_broker_p50_s'])} / {_ms(lat['sample_to_broker_p99_s'])} "
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
    meters = rows[0]["meters"] if rows else 0
    out = [
        "## MQTT output -> mosquitto (bench/mqtt_throughput.py)",
        "",
        f"live: {meters} meters at 1 Hz of meter time, publish_interval_s 1 s, meter time as fast "
        "as the output takes it: every sample becomes one state message from memory (engine "
        "included, QoS 1, acknowledged), nothing written to disk. events: one transaction "
        "(fsync) each, then MQTT. replay: the broker away, the states spill to SQLite in "
        f"batches (outbox_spill_after_s {mqtt_throughput.SPILL_AFTER_S:g} s); written = bytes "
        "the process wrote in the outage per payload byte waiting; msg/s from the reconnect "
        "until all are acknowledged. heard: until the subscriber received the last one (live, "
        "events). Every message arrived once and in order (checked).",
        "",
        "| scenario | loop | messages | msg/s acknowledged | msg/s heard | CPU s / 1,000 "
        "| written per payload byte | spills |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    out += [
        f"| {r['scenario']} | {r['loop']} | {r['messages']} | {_n(r['rate'])} "
        f"| {_n(r.get('heard_rate'))} | {r['cpu_per_1000']:.3f} "
        f"| {r['written_per_payload_byte']:.2f} | {r['spills']} |"
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
