"""Past one Pi: receivers, decode workers and engines on one real MQTT 5 broker (issue 23)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench import cluster as bench_cluster
from gateway.cluster.merge import Merger
from gateway.cluster.wire import (
    RAW_FORMAT,
    DecodedSample,
    WireError,
    decode_sample,
    encode_sample,
    frame_digest,
    raw_payload,
    read_raw,
    receiver_of,
)
from gateway.config import loads, meter_bucket
from gateway.errors import ConfigError
from gateway.model import RawFrame
from modules.codecs.wmbus.layers import strip_crcs
from tests.support.cluster import (
    BASE,
    LineFeeder,
    engine_config,
    receiver_config,
    recorded_traffic,
    subscriptions_logged,
    worker_config,
)
from tests.support.mqtt import Collector, persistent_broker
from tests.support.processes import free_port, gateway

WAIT_S = 60.0  # several gateways start on a possibly busy machine


# wire formats ------------------------------------------------------------------------------------


def test_raw_payload_round_trip_keeps_time_rssi_and_bytes() -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    frame = RawFrame("radio", "wmbus", bytes.fromhex("2a442d2c"), at, -71.5)
    payload = raw_payload(frame)
    assert payload[0] == RAW_FORMAT and len(payload) == 11 + 4
    assert read_raw(payload) == (at, -71.5, bytes.fromhex("2a442d2c"))
    unknown = raw_payload(RawFrame("radio", "wmbus", b"\x01", at - timedelta(days=1)))
    assert read_raw(unknown)[1] is None


@pytest.mark.parametrize(
    ("payload", "why"),
    [(b"\x01" * 11, "shorter"), (b"\x02" + b"\x00" * 12, "format 2")],
)
def test_a_broken_raw_payload_says_why(payload: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        read_raw(payload)


def test_receiver_of_a_raw_topic() -> None:
    assert receiver_of(BASE, f"{BASE}/raw/wmbus/attic/radio") == ("wmbus", "attic/radio")
    with pytest.raises(WireError, match="is not"):
        receiver_of(BASE, f"{BASE}/raw/wmbus/attic")


# receiver mode ----------------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_receiver_publishes_every_frame_with_time_and_rssi_through_an_outage(
    tmp_path: Path,
) -> None:
    broker = persistent_broker(tmp_path)  # the reader's session survives the outage
    broker.start()
    traffic = recorded_traffic()[:6]
    feeder = LineFeeder()
    collector = Collector(broker.port, (f"{BASE}/raw/#",), client_id="raw-reader", persistent=True)
    topic = f"{BASE}/raw/wmbus/cellar/radio"
    try:
        config = receiver_config(tmp_path, "cellar", broker.port, feeder.port)
        with gateway(config, log=tmp_path / "cellar.log"):
            for n, telegram in enumerate(traffic[:3]):
                feeder.send(telegram.data, -60.0 - n, WAIT_S)
            collector.wait_for(topic, 3, WAIT_S)
            broker.stop()  # an outage: the receiver keeps hearing, the outbox keeps it all
            for n, telegram in enumerate(traffic[3:], start=3):
                feeder.send(telegram.data, -60.0 - n, WAIT_S)
            broker.start()
            collector.wait(
                lambda ms: len({m.payload for m in ms if m.topic == topic}) == len(traffic),
                WAIT_S,
            )
            got = collector.on(topic)
    finally:
        collector.close()
        feeder.close()
        broker.stop()
    # QoS 1 is at least once: a frame in flight when the link broke may come twice.
    frames = [read_raw(payload) for payload in dict.fromkeys(m.payload for m in got)]
    assert [data for _, _, data in frames] == [t.data for t in traffic]
    assert [rssi for _, rssi, _ in frames] == [-60.0 - n for n in range(len(traffic))]
    assert all(abs(at - datetime.now(UTC)) < timedelta(minutes=10) for at, _, _ in frames)


# config -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ('[gateway]\nname = "raw"', "gateway.name", "receivers and decode workers share"),
        ("[cluster]\nmeter_hash_range = [10, 10]", "cluster", "0 <= low < high <= 256"),
        ("[cluster]\nmeter_hash_range = [0, 300]", "cluster", "0 <= low < high <= 256"),
        ("[cluster]\nreceivers = true", "cluster", "unknown field `receivers`"),
        ("[cluster]\nreceiver = true\n[mqtt]\nenabled = false", "cluster.receiver", "MQTT"),
    ],
)
def test_cluster_config_errors_name_the_key(text: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        loads(text)
    assert caught.value.path == path


def test_a_hash_range_keeps_only_the_meters_that_hash_into_it() -> None:
    ids = [f"flat{n}" for n in range(40)]
    meters = "".join(f'[[meters]]\nid = "{meter}"\n' for meter in ids)
    low = loads("[cluster]\nmeter_hash_range = [0, 128]\n" + meters)
    high = loads("[cluster]\nmeter_hash_range = [128, 256]\n" + meters)
    kept_low = {m.id for m in low.meters}
    kept_high = {m.id for m in high.meters}
    assert kept_low | kept_high == set(ids) and not kept_low & kept_high
    assert kept_low == {m for m in ids if meter_bucket(m) < 128}
    assert 5 < len(kept_low) < 35  # both halves get a share


# three receivers, two decode workers, one engine -------------------------------------------------


def hearing(index: int) -> tuple[int, ...]:
    """Which of the three receivers hear telegram ``index``: overlaps of one, two and three."""
    heard = [r for r, hears in enumerate((index % 3 != 2, index % 3 != 0, index % 2 == 0)) if hears]
    return tuple(heard)


def rssi_at(receiver: int, index: int) -> float:
    return -50.0 - 10 * receiver - index % 7


def digest_of(telegram: bytes) -> str:
    body, _, _ = strip_crcs(telegram, "auto")
    return frame_digest(body[1:])


def wait_for_log(path: Path, texts: tuple[str, ...], timeout_s: float) -> None:
    """Until the broker's log shows every text (its subscriptions, with log_type subscribe)."""
    deadline = time.monotonic() + timeout_s
    while not all(text in path.read_text(errors="replace") for text in texts):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the broker log does not show {texts}")
        time.sleep(0.1)


def feed_health(port: int) -> dict[str, Any]:
    """The meter feed's health detail; empty while the engine's HTTP server is not up yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=10) as reply:
            body = json.load(reply)
    except urllib.error.URLError:
        return {}
    (feed,) = [m for m in body["modules"] if m["name"] == "feed"]
    return dict(feed["detail"])


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_three_receivers_two_workers_one_engine_count_each_telegram_once(tmp_path: Path) -> None:
    broker = subscriptions_logged(tmp_path)
    traffic = recorded_traffic(omnipower_telegrams=60)
    copies = {
        (digest_of(t.data), f"rx{r}/radio") for i, t in enumerate(traffic) for r in hearing(i)
    }
    per_meter = Counter(t.meter for t in traffic)
    feeders = [LineFeeder() for _ in range(3)]
    collector = Collector(broker.port, (f"{BASE}/samples/#",))
    http_port = free_port()
    worker_a = worker_config(tmp_path, "wa", broker.port, traffic)
    worker_b = worker_config(tmp_path, "wb", broker.port, traffic)

    def decoded() -> list[dict[str, Any]]:
        return [m.json() for m in collector.messages if m.topic.startswith(f"{BASE}/samples/")]

    def send(indexes: range) -> None:
        for index in indexes:
            for receiver in hearing(index):
                feeders[receiver].send(traffic[index].data, rssi_at(receiver, index), WAIT_S)

    try:
        with contextlib.ExitStack() as stack:
            for n, feeder in enumerate(feeders):
                config = receiver_config(tmp_path, f"rx{n}", broker.port, feeder.port)
                stack.enter_context(gateway(config, log=tmp_path / f"rx{n}.log"))
            engine = engine_config(tmp_path, "engine", broker.port, http_port, traffic)
            stack.enter_context(gateway(engine, log=tmp_path / "engine.log"))
            first = stack.enter_context(gateway(worker_a, log=tmp_path / "wa.log"))
            stack.enter_context(gateway(worker_b, log=tmp_path / "wb.log"))
            wait_for_log(
                broker.log,
                (
                    f"meter-gateway-wa-decoder 1 $share/decoders/{BASE}/raw/wmbus/#",
                    f"meter-gateway-wb-decoder 1 $share/decoders/{BASE}/raw/wmbus/#",
                    f"meter-gateway-engine-feed 1 {BASE}/samples/",
                ),
                WAIT_S,
            )
            half = len(traffic) // 2
            send(range(half))
            wanted = {digest_of(t.data) for t in traffic[:half]}
            collector.wait(lambda _: wanted <= {d["digest"] for d in decoded()}, WAIT_S)
            split_before_kill = Counter(d["worker"] for d in decoded())
            # Worker A freezes and the second half arrives: the broker hands A its share
            # (in flight to it, unacknowledged, or queued on its session) while B decodes
            # the rest. Then A dies (kill -9) holding them; they must come back to A.
            os.kill(first.pid, signal.SIGSTOP)
            send(range(half, len(traffic)))
            second = {digest_of(t.data) for t in traffic[half:]}
            collector.wait(
                lambda _: any(
                    d["digest"] in second and d["worker"] == "wb/decoder" for d in decoded()
                ),
                WAIT_S,
            )
            first.kill()
            first.wait()
            before_restart = len(decoded())
            with gateway(worker_a, log=tmp_path / "wa-again.log"):
                collector.wait(
                    lambda _: copies <= {(d["digest"], d["receiver"]) for d in decoded()}, WAIT_S
                )
                wait_until(
                    lambda: feed_health(http_port).get("accepted") == dict(per_meter),
                    WAIT_S,
                    "the engine accepted every telegram",
                )
                health = feed_health(http_port)
                metrics_url = f"http://127.0.0.1:{http_port}/metrics"
                with urllib.request.urlopen(metrics_url, timeout=10) as reply:
                    metrics = reply.read().decode()
    finally:
        collector.close()
        for feeder in feeders:
            feeder.close()
        broker.stop()

    samples = decoded()
    # The frames A held when it died were decoded after its restart, by A: redelivered.
    assert any(
        d["worker"] == "wa/decoder" and d["digest"] in second for d in samples[before_restart:]
    )
    # Every copy every receiver heard was decoded: none lost to the kill.
    assert {(d["digest"], d["receiver"]) for d in samples} == copies
    # The work was shared: both workers decoded part of it before one was killed.
    assert set(split_before_kill) == {"wa/decoder", "wb/decoder"}, split_before_kill
    # Each telegram counted once per meter, however many receivers heard it.
    assert health["accepted"] == dict(per_meter)
    assert health["telegrams"]["accepted"] == len(traffic)
    assert health["telegrams"]["copies_merged"] + health["telegrams"]["late_copies"] >= len(
        copies
    ) - len(traffic)
    # Coverage: every receiver that heard a meter, with its best RSSI.
    for meter in per_meter:
        expected = {
            f"rx{r}/radio": max(
                rssi_at(r, i) for i, t in enumerate(traffic) if t.meter == meter and r in hearing(i)
            )
            for i, t in enumerate(traffic)
            if t.meter == meter
            for r in hearing(i)
        }
        coverage = health["coverage"][meter]
        assert {rx: c["best_rssi_dbm"] for rx, c in coverage.items()} == expected
        for receiver, best in expected.items():
            labels = f'module="feed",meter="{meter}",receiver="{receiver}"'
            assert f"meter_gateway_receiver_best_rssi_dbm{{{labels}}} {best:g}" in metrics
            assert f"meter_gateway_receiver_telegrams_total{{{labels}}} " in metrics
    print(
        "split before the kill:",
        dict(split_before_kill),
        "after:",
        dict(Counter(d["worker"] for d in samples)),
    )


# merging copies ---------------------------------------------------------------------------------


def copy(
    receiver: str, rssi: float | None, *, access: int = 7, digest: str = "d1"
) -> DecodedSample:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    return DecodedSample(
        meter="flat1",
        protocol="wmbus",
        address="KAM 12345678",
        access=access,
        digest=digest,
        at=at,
        received=at,
        receiver=receiver,
        rssi=rssi,
        worker="w/decoder",
        readings=(("1-0:1.8.0", Decimal("1.5"), "kWh"),),
    )


def test_copies_in_the_window_are_one_telegram_with_the_best_rssi_and_every_receiver() -> None:
    merger = Merger(merge_window_s=2.0, duplicate_window_s=60.0)
    merger.add(copy("a/radio", -80.0), now=0.0)
    merger.add(copy("b/radio", -60.5), now=0.5)
    merger.add(copy("c/radio", None), now=1.0)
    merger.add(copy("a/radio", -70.0, access=8, digest="d2"), now=1.5)  # the next telegram
    assert merger.due(1.9) == [] and merger.next_due() == 2.0
    (first,) = merger.due(2.0)
    assert first.receivers == {"a/radio": -80.0, "b/radio": -60.5, "c/radio": None}
    assert first.best_rssi == -60.5
    merger.add(copy("b/radio", -61.0), now=30.0)  # a redelivery long after: still the same one
    (second,) = merger.due(30.0)
    assert second.sample.access == 8
    assert merger.accepted == {"flat1": 2}
    assert (merger.copies, merger.late_copies) == (2, 1)
    coverage = merger.coverage["flat1"]
    assert coverage["b/radio"].telegrams == 2 and coverage["b/radio"].best_rssi_dbm == -60.5
    assert coverage["c/radio"].best_rssi_dbm is None


def test_after_the_duplicate_window_the_same_bytes_count_again() -> None:
    merger = Merger(merge_window_s=0.0, duplicate_window_s=10.0)
    merger.add(copy("a/radio", -70.0), now=0.0)
    assert len(merger.due(0.0)) == 1
    merger.add(copy("a/radio", -70.0), now=11.0)
    assert len(merger.due(11.0)) == 1 and merger.accepted == {"flat1": 2}


def test_flush_releases_what_is_held() -> None:
    merger = Merger()
    merger.add(copy("a/radio", -70.0), now=0.0)
    assert [m.sample.receiver for m in merger.flush(0.1)] == ["a/radio"]
    assert merger.next_due() is None


def test_decoded_sample_round_trip_keeps_values_exact() -> None:
    sample = copy("a/radio", -70.0)
    again = decode_sample(encode_sample(sample))
    assert again == sample and isinstance(again.readings[0][1], Decimal)
    with pytest.raises(WireError, match="meter"):
        decode_sample(b'{"protocol": "wmbus"}')


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ('type = "decode_worker"\nname = "d"\ngroup = "a/b"', "`group`"),
        ('type = "decode_worker"\nname = "d"\nsession_expiry_s = 0', "`session_expiry_s`"),
        (
            'type = "decode_worker"\nname = "d"\n[[modules.meters]]\nid = "1234567"\n',
            "8 digits",
        ),
        ('type = "meter_feed"\nname = "f"\nmerge_window_s = 99', "`merge_window_s`"),
        ('type = "meter_feed"\nname = "f"\nmeters = ["nope"]', "'nope' is not defined"),
    ],
)
def test_worker_and_feed_config_errors_name_the_field(module: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        loads(f'[[meters]]\nid = "flat1"\n\n[[modules]]\n{module}\n')
    assert caught.value.path is not None and caught.value.path.startswith("modules[0]")


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_scaling_bench_runs_on_a_small_batch(tmp_path: Path) -> None:
    batch = bench_cluster.frames(60)
    results = []
    for workers in (0, 1):
        (tmp_path / str(workers)).mkdir()
        results.append(bench_cluster.run(tmp_path / str(workers), batch, workers))
    assert [r["frames"] for r in results] == [60, 60]
    assert results[1]["worker_cpu_us_per_frame"] > 0
    estimate = bench_cluster.paper_estimate(results, engine_us_per_sample=91.0)
    assert estimate["raw_frames_per_s"] == 1250
    saturation = estimate["meters_at_saturation"]
    assert saturation[estimate["first_bottleneck"]] == min(saturation.values())


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_broker_holds_an_engines_samples_while_it_is_down(tmp_path: Path) -> None:
    broker = subscriptions_logged(tmp_path)
    traffic = recorded_traffic(omnipower_telegrams=10)
    feeder = LineFeeder()
    http_port = free_port()
    engine = engine_config(tmp_path, "engine", broker.port, http_port, traffic)
    subscribed = f"meter-gateway-engine-feed 1 {BASE}/samples/"
    try:
        with contextlib.ExitStack() as stack:
            config = receiver_config(tmp_path, "rx0", broker.port, feeder.port)
            stack.enter_context(gateway(config, log=tmp_path / "rx0.log"))
            worker = worker_config(tmp_path, "wa", broker.port, traffic)
            stack.enter_context(gateway(worker, log=tmp_path / "wa.log"))
            with gateway(engine, log=tmp_path / "engine.log"):  # makes its session, then stops
                wait_for_log(broker.log, (subscribed, "meter-gateway-wa-decoder 1 $share/"), WAIT_S)
            collector = Collector(broker.port, (f"{BASE}/samples/#",))
            try:
                for telegram in traffic:  # the engine is down meanwhile
                    feeder.send(telegram.data, -70.0, WAIT_S)
                # Every sample is out before the engine is back: only the broker has them.
                collector.wait(lambda ms: len(ms) >= len(traffic), WAIT_S)
            finally:
                collector.close()
            with gateway(engine, log=tmp_path / "engine-again.log"):
                wait_until(
                    lambda: (
                        feed_health(http_port).get("telegrams", {}).get("accepted") == len(traffic)
                    ),
                    WAIT_S,
                    "the engine got what the broker held for it",
                )
                assert feed_health(http_port)["accepted"] == dict(Counter(t.meter for t in traffic))
    finally:
        feeder.close()
        broker.stop()


def test_what_was_released_is_still_known_after_a_restart() -> None:
    before = Merger(merge_window_s=0.0, duplicate_window_s=60.0)
    before.add(copy("a/radio", -70.0), now=100.0)
    before.add(copy("a/radio", -70.0, access=8, digest="d2"), now=100.0)
    assert len(before.due(100.0)) == 2
    memory = before.memory(now=130.0, wall=1_000_030.0)  # released 30 s before the stop
    after = Merger(merge_window_s=0.0, duplicate_window_s=60.0)
    # The new run's monotonic clock starts anywhere; 20 s of wall time passed meanwhile.
    assert after.remember(memory, now=5.0, wall=1_000_050.0) == 2
    after.add(copy("b/radio", -60.0), now=6.0)  # a copy delayed past the restart
    assert after.due(6.0) == [] and after.late_copies == 1
    # 60 s after the release it is a new telegram again, and broken memories are ignored.
    later = Merger(merge_window_s=0.0, duplicate_window_s=60.0)
    assert later.remember(memory, now=0.0, wall=1_000_061.0) == 0
    assert later.remember(b"not json", now=0.0, wall=0.0) == 0
    assert later.remember(b'[["m", "a", "x", "d", 1.0]]', now=0.0, wall=1.0) == 0
