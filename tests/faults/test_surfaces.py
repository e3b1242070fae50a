"""The HTTP and MQTT surfaces under bad and hostile input, and secrets kept secret.

One real gateway process (sim meter with prepayment), a password-protected mosquitto, an API
token and a command secret. Every state-changing request without valid authority is refused
with a clear status and changes nothing; no response, MQTT message, log line or `ps` line ever
carries the token, the broker password or the command secret, nor a stack trace.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.signing import sign_payload
from tests.faults.harness import bounded, figure, gateway_process
from tests.support.mqtt import RUN_AS_INVOKER, Collector
from tests.support.processes import Broker, free_port, wait_for_port

pytestmark = [pytest.mark.network, pytest.mark.slow, bounded(240)]

TOKEN = "api-token-Zq8u1xVb3mN0pLk7"
PASSWORD = "broker-password-Hh4sT9eWq2"
SECRET = "command-secret-Yy6rE1oPa5"
GATEWAY_NAME = "home"  # the default [gateway] name, which the configs here keep
BASE = f"meter-gateway/{GATEWAY_NAME}"  # <base_topic>/<gateway name>
REPLY = f"{BASE}/main/reply"
# Idle and slow connections a LAN neighbour might hold open (bounded: this is a test, not a DoS).
IDLE_CONNECTIONS = 200
SLOW_CONNECTIONS = 50


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, Any]]:
    broker = Broker(tmp_path)
    passwords = tmp_path / "passwd"
    passwords.touch()
    subprocess.run(
        ["mosquitto_passwd", "-b", str(passwords), "gateway", PASSWORD],
        check=True,
        capture_output=True,
    )
    broker.config.write_text(
        RUN_AS_INVOKER
        + f"listener {broker.port} 127.0.0.1\nallow_anonymous false\n"
        + f"password_file {passwords}\npersistence false\n"
    )
    broker.start()
    for name, text in (("token", TOKEN), ("mqtt-password", PASSWORD), ("secret", SECRET)):
        (tmp_path / name).write_text(text + "\n")
    http_port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[gateway]
data_dir = "{tmp_path / "data"}"
persist_interval_s = 0.5
[mqtt]
host = "127.0.0.1"
port = {broker.port}
username = "gateway"
password_file = "{tmp_path / "mqtt-password"}"
command_secret_file = "{tmp_path / "secret"}"
[http]
port = {http_port}
token_file = "{tmp_path / "token"}"
[zeroconf]
enabled = false
[[meters]]
id = "main"
[meters.prepayment]
enabled = true
[[modules]]
type = "sim"
name = "sim1"
meter = "main"
"""
    )
    log = tmp_path / "gateway.log"
    watcher = Collector(broker.port, ("#",), username="gateway", password=PASSWORD)
    try:
        with gateway_process(config, log) as started:
            wait_for_port(http_port, 30)
            watcher.wait(lambda ms: any(m.topic == f"{BASE}/status" for m in ms), 30)
            yield {"http": http_port, "log": log, "mqtt": watcher, "process": started.process}
    finally:
        watcher.close()
        broker.stop()


def request(
    port: int, method: str, path: str, body: bytes | None = None, token: str | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def billing_count(port: int) -> int:
    status, body = request(port, "GET", "/api/v1/meters/main/billing")
    assert status == 200
    document = json.loads(body)
    records = document.get("records", document) if isinstance(document, dict) else document
    return len(records)


def balance(port: int) -> str:
    status, body = request(port, "GET", "/api/v1/meters/main/breaker")
    assert status == 200, body
    return json.dumps(json.loads(body).get("prepayment"), sort_keys=True)


def test_state_changes_without_authority_are_refused_and_change_nothing(
    setup: dict[str, Any],
) -> None:
    port = setup["http"]
    stops = billing_count(port)
    path = "/api/v1/meters/main/commands/debiting_stop"
    for token in (None, "wrong-token", TOKEN + "x", ""):
        status, body = request(port, "POST", path, b"{}", token=token)
        assert status in (401, 403), (token, status, body)
        assert b"Traceback" not in body
    assert billing_count(port) == stops
    status, _ = request(port, "POST", path, b"{}", token=TOKEN)
    assert status == 200, "the right token works, so the refusals above were about authority"


def test_malformed_oversized_and_traversing_requests_get_clear_refusals(
    setup: dict[str, Any],
) -> None:
    port = setup["http"]
    path = "/api/v1/meters/main/commands/debiting_stop"
    bodies = [
        b"{not json",
        b"[1, 2, 3]",
        b'{"args": "not an object"}',
        b"[" * 5000 + b"]" * 5000,
        b"\xff\xfe\x00garbage",
    ]
    for body in bodies:
        status, reply = request(port, "POST", path, body, token=TOKEN)
        assert 400 <= status < 500, (body[:20], status, reply[:200])
        assert b"Traceback" not in reply
    status, reply = request(port, "POST", path, b"{" + b" " * (8 << 20) + b"}", token=TOKEN)
    assert status in (400, 413), status
    for traversal in (
        "/static/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/meters/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    ):
        status, reply = request(port, "GET", traversal)
        assert status in (400, 403, 404), (traversal, status)
        assert b"root:" not in reply
    try:
        status, _ = request(port, "GET", "/api/v1/meters/" + "a" * 100_000)
    except (ConnectionError, http.client.HTTPException):
        status = 0  # closing the connection on a monster request line is a refusal too
    assert status in (0, 400, 414, 431), status
    status, _ = request(port, "GET", "/api/v1/health")
    assert status == 200, "still serving after all of that"
    assert "Traceback" not in setup["log"].read_text(), "a malformed request is one log line"


def test_idle_and_slow_connections_do_not_starve_the_api(setup: dict[str, Any]) -> None:
    port = setup["http"]
    held: list[socket.socket] = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        slow = [
            socket.create_connection(("127.0.0.1", port), timeout=10)
            for _ in range(SLOW_CONNECTIONS)
        ]
        for sock in slow:  # slowloris: a request whose headers never end
            sock.send(b"GET /api/v1/health HTTP/1.1\r\nHost: gateway\r\n")
        held += slow
        deadline = time.monotonic() + 6.0
        worst = 0.0
        while time.monotonic() < deadline:
            for sock in slow:
                # The server may hang up on a slow client: that is allowed.
                with contextlib.suppress(OSError):
                    sock.send(b"X-Slow: 1\r\n")
            started = time.monotonic()
            status, _ = request(port, "GET", "/api/v1/health")
            worst = max(worst, time.monotonic() - started)
            assert status == 200
            time.sleep(1.0)
    finally:
        for sock in held:
            sock.close()
    assert setup["process"].poll() is None
    figure(
        f"health answer beside {IDLE_CONNECTIONS} idle + {SLOW_CONNECTIONS} slow clients, worst s",
        f"{worst:.3f}",
    )


def test_signed_commands_replayed_expired_or_forged_are_refused_and_logged(
    setup: dict[str, Any],
) -> None:
    mqtt: Collector = setup["mqtt"]
    port = setup["http"]
    secret = SECRET.encode()

    def send(command: str, payload: bytes) -> dict[str, Any]:
        before = len(mqtt.on(REPLY))
        mqtt.publish(f"{BASE}/main/set/{command}", payload)
        replies = mqtt.wait_for(REPLY, before + 1, 20)
        answer: dict[str, Any] = replies[-1].json()
        return answer

    top_up = {"id": "t-1", "sequence": 1, "amount": "25"}
    good = sign_payload(GATEWAY_NAME, "main", "top_up", top_up, secret=secret, command_id="c-1")
    assert send("top_up", good)["ok"] is True
    after_first = balance(port)
    refusals = {
        "replayed": good,
        "stale": sign_payload(
            GATEWAY_NAME,
            "main",
            "top_up",
            {**top_up, "id": "t-2", "sequence": 2},
            secret=secret,
            command_id="c-2",
            ts=time.time() - 86_400,
        ),
        "bad_signature": sign_payload(
            GATEWAY_NAME,
            "main",
            "top_up",
            {**top_up, "id": "t-3", "sequence": 3},
            secret=b"not the secret",
            command_id="c-3",
        ),
        "unsigned": json.dumps({"args": {**top_up, "id": "t-4", "sequence": 4}}).encode(),
    }
    for code, payload in refusals.items():
        answer = send("top_up", payload)
        assert answer["ok"] is False and answer["error"]["code"] == code, (code, answer)
    # A second, freshly signed message carrying the same top-up is a top-up replay.
    again = sign_payload(GATEWAY_NAME, "main", "top_up", top_up, secret=secret, command_id="c-5")
    answer = send("top_up", again)
    assert answer["ok"] is False and answer["error"]["code"] == "replayed", answer
    assert balance(port) == after_first, "no refusal changed the credit"
    log = setup["log"].read_text()
    for code in ("replayed", "stale", "bad_signature", "unsigned"):
        assert code in log, f"the {code} refusal is not in the log"


def test_no_secret_in_logs_api_mqtt_or_ps(setup: dict[str, Any]) -> None:
    port = setup["http"]
    mqtt: Collector = setup["mqtt"]
    seen: list[bytes] = []
    for path in ("/api/v1/info", "/api/v1/health", "/metrics", "/api/v1/openapi.json", "/"):
        status, body = request(port, "GET", path)
        assert status == 200, path
        seen.append(body)
    request(port, "POST", "/api/v1/meters/main/commands/debiting_stop", b"{}", token="guess")
    time.sleep(1.0)
    seen += [m.payload for m in mqtt.messages]
    seen.append(setup["log"].read_bytes())
    pid = setup["process"].pid
    seen.append(Path(f"/proc/{pid}/cmdline").read_bytes())
    seen.append(Path(f"/proc/{pid}/environ").read_bytes())
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, check=False).stdout
    seen.append(ps)
    for secret in (TOKEN, PASSWORD, SECRET):
        leaks = [blob[:80] for blob in seen if secret.encode() in blob]
        assert not leaks, f"{secret[:12]}... leaked in {leaks}"
    assert not any(b"Traceback" in blob for blob in seen)
