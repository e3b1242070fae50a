"""The LAN server binds at start and loads aiohttp for its first client: a real `meter-gateway
run`, real sockets on loopback, and the process's own memory map to see what it has loaded."""

from __future__ import annotations

import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.faults.harness import wait_for_log
from tests.support.processes import free_port
from tests.support.processes import gateway as process_gateway

WAIT_S = 30.0
# aiohttp's compiled HTTP parser: mapped into the process exactly when aiohttp.web is imported
# (nothing else of the gateway loads aiohttp), so the memory map tells without a test hook.
AIOHTTP_PARSER = "aiohttp/_http_parser"
# Paths a first visit asks for at once: the page, its files and the API it calls.
FIRST_VISIT = (
    "/",
    "/static/app.js",
    "/static/style.css",
    "/api/v1/info",
    "/api/v1/health",
    "/api/v1/meters",
    "/metrics",
    "/api/v1/openapi.json",
)


def config_text(tmp_path: Path, port: int) -> str:
    """The embedded default's shape (one sim meter, the page on loopback), MQTT off."""
    return f"""
[gateway]
name = "firstvisit"
data_dir = "{tmp_path / "data"}"

[mqtt]
enabled = false

[http]
bind = "127.0.0.1"
port = {port}

[[meters]]
id = "main"

[[modules]]
type = "sim"
name = "sim1"
meter = "main"
"""


def loaded(pid: int, library: str) -> bool:
    """Whether ``library`` is mapped into the process (``/proc/PID/maps``)."""
    return library in Path(f"/proc/{pid}/maps").read_text()


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=WAIT_S) as answer:
        return answer.status, answer.read()


def test_the_first_visit_loads_the_server_and_every_queued_request_is_answered(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path, port))
    log = tmp_path / "gateway.log"
    with process_gateway(config, log=log) as process:
        wait_for_log(log, "gateway firstvisit started", WAIT_S)
        wait_for_log(log, f"http: serving http://127.0.0.1:{port}/", WAIT_S)
        # The port is taken from the start: nobody else can bind it.
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                other.bind(("127.0.0.1", port))
                other.listen()
                taken = False
            except OSError:
                taken = True
        assert taken, f"port {port} was free after the gateway said it serves it"
        assert not loaded(process.pid, AIOHTTP_PARSER), "aiohttp loaded before any client came"
        assert "web server loaded" not in log.read_text()

        # A first visit: the page and everything it asks for at once, all queued while the
        # server loads; each gets its whole answer.
        base = f"http://127.0.0.1:{port}"
        with ThreadPoolExecutor(len(FIRST_VISIT)) as pool:
            answers = list(pool.map(get, [base + path for path in FIRST_VISIT]))
        assert [status for status, _ in answers] == [200] * len(FIRST_VISIT)
        page, script = answers[0][1], answers[1][1]
        assert b"<html" in page.lower()
        assert len(script) > 0
        assert b"meter_gateway_" in answers[FIRST_VISIT.index("/metrics")][1]

        wait_for_log(log, "http: web server loaded for the first client", WAIT_S)
        assert loaded(process.pid, AIOHTTP_PARSER), (
            f"{AIOHTTP_PARSER} not mapped after requests were served: is aiohttp installed"
            " without its C extensions? this test then cannot tell whether aiohttp is loaded"
        )
        assert log.read_text().count("web server loaded for the first client") == 1
        assert process.poll() is None


def test_a_server_that_cannot_load_refuses_its_clients_and_says_why(tmp_path: Path) -> None:
    # A broken aiohttp installation, shadowing the real one for this process only.
    broken = tmp_path / "broken" / "aiohttp"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("aiohttp broken on purpose")\n')
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path, port))
    log = tmp_path / "gateway.log"
    env = {"PYTHONPATH": str(broken.parent)}
    with process_gateway(config, log=log, env=env) as process:
        wait_for_log(log, f"http: serving http://127.0.0.1:{port}/", WAIT_S)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as client:
            client.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: gateway\r\n\r\n")
            try:
                answer = client.recv(4096)
            except ConnectionResetError:
                answer = b""
        # Closed on the client, not left waiting in a queue nobody serves.
        assert answer == b""
        text = wait_for_log(log, "retrying in", WAIT_S)
        assert "http: the web server could not be loaded for the first client" in text
        assert "aiohttp broken on purpose" in text
        assert process.poll() is None, "a web server that cannot load must not stop the gateway"
