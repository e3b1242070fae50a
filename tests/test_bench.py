"""Every bench runs on a tiny input and reports figures that make sense (never installs peers)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as bench_main
from bench import (
    codecs,
    e2e,
    e2e_inprocess,
    engine_load,
    mqtt_throughput,
    peers,
    pi,
    soak_kill,
    startup,
    vectors,
)
from gateway import config, registry

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_install() -> Iterator[None]:
    before = os.environ.get(peers.NO_INSTALL_ENV)
    os.environ[peers.NO_INSTALL_ENV] = "1"
    yield
    if before is None:
        del os.environ[peers.NO_INSTALL_ENV]
    else:
        os.environ[peers.NO_INSTALL_ENV] = before


@pytest.mark.parametrize("protocol", vectors.PROTOCOLS)
def test_codec_bench_decodes_the_vectors(protocol: str) -> None:
    found = codecs.measure(protocol, 0.01, with_peers=False)
    assert found["inputs"] == len(vectors.inputs(protocol)) > 0
    # Most vectors are good frames; the rest are deliberate refusals (bad CRC, truncated).
    assert found["ours_accepted"] >= found["inputs"] // 2
    assert found["ours_fps"] > 0


def test_peer_inputs_carry_keys_and_text() -> None:
    dlms = [i for i in vectors.inputs("dlms") if i.key]
    assert dlms and dlms[0].key is not None
    assert dlms[0].peer_form("hex")["key"] == dlms[0].key.hex()
    telegram = vectors.inputs("dsmr")[0].peer_form("text")["data"]
    assert telegram.startswith("/") and "\r\n" in telegram


def test_engine_load_writes_and_counts(tmp_path: Path) -> None:
    figures = engine_load.run(0.02)
    assert figures["samples"] == 72
    assert figures["engine_samples_per_s"] > 0
    assert figures["bytes_written_per_day"] >= 0


def test_pi_workloads_and_nbody() -> None:
    assert pi.engine_work(20) > 0
    assert pi.mbus_work(20) > 0
    # The benchmark's published outputs for 0 and 1,000 steps: the algorithm is the same.
    assert f"{pi.nbody(0):.9f}" == "-0.169075164"
    assert f"{pi.nbody(1000):.9f}" == "-0.169087605"


def test_startup_config_names_every_module_type(tmp_path: Path) -> None:
    ports = {name: 10000 + n for n, name in enumerate(startup.EMULATORS)}
    text = startup._config(tmp_path, 1883, 8382, ports, tmp_path / "tty")
    settings = config.loads(text)
    types = {module.type for module in settings.modules}
    from gateway import registry  # noqa: PLC0415

    assert types == set(registry.ADAPTERS)


@pytest.mark.network
def test_e2e_worker_runs_a_short_ramp() -> None:
    result = e2e.run(3, "asyncio", nominal_s=1.5, step_s=0.5, max_steps=1, start_rate=30)
    assert result["meters"] == 3
    assert result["nominal"]["samples_per_s"] > 0
    assert len(result["steps"]) == 2
    assert result["peak_rss_mb"] > 10


def test_e2e_in_process_feeds_the_engines_and_the_whole_gateway() -> None:
    result = e2e_inprocess.measure(20, 1.0, 2, trace_s=60)
    assert result["engine_us_per_sample"] > 0
    # The gateway's path ingests the same samples and builds a state message for each.
    assert result["gateway_us_per_sample"] > result["engine_us_per_sample"]
    assert "bench_sim" not in registry.ADAPTERS  # the process's registry left as it was


@pytest.mark.network
def test_mqtt_bench_delivers_from_memory_and_replays_a_spilled_outage() -> None:
    rows = mqtt_throughput.measure(60, ["asyncio"], meters=6, outage_s=1.5)
    found = {r.scenario: r for r in rows}
    assert list(found) == ["live", "events", "replay"]
    live, events, replay = found["live"], found["events"], found["replay"]
    assert all(r.messages == 60 and r.seconds > 0 and r.rate > 0 for r in rows)
    # The subscriber heard the live and event messages after they were queued; after the
    # outage its own reconnect would count, so that figure is left out.
    assert live.heard_s is not None and events.heard_s is not None
    assert live.heard_s > 0 and events.heard_s > 0 and replay.heard_rate is None
    # Live states left from memory; an event costs a transaction; the outage went to disk in
    # batches (one spill per message would be 60) that wrote something for what waited.
    assert live.spills == 0 and events.spills == 0
    assert 1 <= replay.spills < 60
    assert replay.disk_bytes > 0 and replay.written_per_payload_byte > 0
    assert events.disk_bytes > live.disk_bytes
    # 6 meters' three-phase states (22 registers each) are all far above 100 bytes.
    assert min(live.payload_bytes, replay.payload_bytes) > 60 * 1000
    text = "\n".join(bench_main._mqtt_md([r.figures() for r in rows], {}))
    assert f"| replay | asyncio | 60 | {replay.rate:,.0f} |" in text


def test_mqtt_bench_refuses_lost_repeated_or_reordered_messages() -> None:
    good: list[mqtt_throughput.Heard] = [
        ("s/a", "a", 1, 9, 0.1),
        ("s/b", "b", 1, 9, 0.2),
        ("s/a", "a", 2, 9, 0.3),
    ]
    good.append(("s/b", "b", 2, 9, 0.4))
    assert mqtt_throughput.verify("live", good, 4, first=1) == good
    cases = {
        "got 3 of 4": good[:3],
        "number 3 where 2 was due": [*good[:2], ("s/a", "a", 3, 9, 0.3), good[3]],
        "number 1 where 2 was due": [*good[:2], ("s/a", "a", 1, 9, 0.3), good[3]],
        "number 2 where 1 was due": [("s/a", "a", 2, 9, 0.1), *good[1:]],
    }
    for message, seen in cases.items():
        with pytest.raises(mqtt_throughput.BenchError, match=message):
            mqtt_throughput.verify("live", seen, 4, first=1)


def test_results_markdown_from_a_short_run(tmp_path: Path) -> None:
    # "compiled" builds the mypyc copy (codecs and engine, over a minute on a busy host):
    # make pytest-compiled builds and tests that one. "sd_card" runs whole gateways for minutes
    # of wall time; its table is checked from figures below.
    skip = {"peers", "e2e", "mqtt", "startup", "pi", "compiled", "sd_card"}
    results = bench_main.run_all(True, skip, with_peers=False)
    assert all("error" not in row for row in results["codecs"])
    text = bench_main.markdown(json.loads(json.dumps(results)))
    assert "| mbus |" in text
    assert "| MB written per day |" in text  # the SD card figures


def test_the_goals_table_reads_each_figure_against_its_goal() -> None:
    figures: dict[str, Any] = {
        "when": "2026-01-01T00:00:00+00:00",
        "quick": True,
        "host": {"cpu": "test", "cores": 2, "python": "3", "platform": "test"},
        "startup": {
            "default": {"ready_s": 0.2, "idle_rss_mb": 39.0, "communicating": []},
            "every module type": {"ready_s": 0.5, "idle_rss_mb": 51.0, "communicating": []},
        },
        "sd_card": [
            {
                "meters": 1,
                "checkpoint_s": 1800.0,
                "meter_hours": 2.0,
                "speed": 60.0,
                "bytes_per_day": 0.9e6,
                "log_lines_per_wall_hour": 0.0,
            },
            {
                "meters": 10,
                "checkpoint_s": 1800.0,
                "meter_hours": 2.0,
                "speed": 60.0,
                "bytes_per_day": 6.5e6,
                "log_lines_per_wall_hour": 0.0,
            },
        ],
        "engine": {
            "engine_samples_per_s": 30_000.0,
            "engine_cpu_us_per_sample": 33.0,
            "outage": {
                "written_bytes": 3e6,
                "payload_bytes": 1.5e6,
                "ratio": 2.0,
                "messages": 7200,
            },
        },
        "pi": {"engine_instructions_per_sample": 380_000.0},
        "compiled": {
            "extensions": 3,
            "codecs": [],
            "pi": {"engine_instructions_per_sample": 190_000.0, "mbus_instructions_per_frame": 1.0},
            "engine": {"engine_samples_per_s": 55_000.0, "engine_cpu_us_per_sample": 18.0},
        },
    }
    rows = {what: (got, met) for what, got, _goal, met in bench_main.goals(figures)}
    assert rows["idle RSS, default / every module type"] == ("39.0 / 51.0 MB", False)
    assert rows["READY, default config"] == ("200 ms", True)
    assert rows["SD card, 1 meter: MB written per day"] == ("0.90", True)
    assert rows["SD card, 10 meters: MB written per day"] == ("6.50", False)
    # Either build meeting the instruction goal meets it.
    assert rows["engine sample, instructions"] == ("380,000 pure, 190,000 compiled", True)
    assert rows["engine samples/s on one core"] == ("30,000 pure, 55,000 compiled", True)
    without_compiled_rate = json.loads(json.dumps(figures))
    del without_compiled_rate["compiled"]["engine"]
    rows = {what: (got, met) for what, got, _goal, met in bench_main.goals(without_compiled_rate)}
    assert rows["engine samples/s on one core"] == ("30,000 pure", False)
    # Spilling that writes twice the payload it keeps is over the 1.5x goal.
    assert rows["broker away: bytes written per payload byte waiting"] == ("2.00x", False)
    # A codec without figures in this run is "not measured", never "met".
    assert rows["kmp decode vs PyKMP"] == ("-", None)
    text = bench_main.markdown({k: v for k, v in figures.items() if k != "pi"})  # pi: partial
    assert "| SD card, 10 meters: MB written per day | 6.50 | <= 5 | not met |" in text
    assert "| 10 | 1800 s | 2.00 | x60 | 6.50 | 0.0 |" in text


def test_the_kill_soak_hears_the_gateway_and_finds_no_regression() -> None:
    # Two cycles, seed 3 puts the first kill in a broker outage: its spilled states must arrive.
    figures = soak_kill.run(2, seed=3)
    assert figures["cycles"] == 2
    assert figures["outage_kills"] >= 1
    assert figures["spilled_messages"] > 0
    assert figures["spilled_arrived"] == figures["spilled_messages"]
    assert figures["register_regressions"] == figures["published_regressions"] == 0
    assert figures["integrity_failures"] == 0


def test_both_settings_run_the_sd_card_at_the_default_checkpoint_interval() -> None:
    for quick in (True, False):
        settings = bench_main._settings(quick)
        assert settings["sd_card"]["checkpoint_s"] == bench_main.CHECKPOINT_S
