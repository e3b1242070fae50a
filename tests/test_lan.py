"""The LAN API on loopback: a real gateway, a real aiohttp server and a real HTTP client."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__, config
from gateway.app import STORE_FILE, Gateway
from gateway.errors import CommandError
from gateway.lan import LanServer
from gateway.lan.openapi import paths
from gateway.model import Command, Event, Reading, Sample
from gateway.store import Store, registers_in
from gateway.view import GatewayView
from tests.support.gateway import until
from tests.support.processes import free_port, wait_for_port
from tests.support.processes import gateway as process_gateway

TOKEN = "correct horse battery staple 382"
START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
RETENTION_DAYS = 36_500


def settings_text(
    tmp_path: Path, *, token: bool = True, zeroconf: str = "", sim: bool = True
) -> str:
    """A gateway with a fast sim meter "main" and a quiet meter "second" the test feeds."""
    token_file = tmp_path / "http-token"
    token_file.write_text(TOKEN + "\n")
    token_line = f'token_file = "{token_file}"' if token else ""
    module = (
        '[[modules]]\ntype = "sim"\nname = "sim1"\nmeter = "main"\ninterval_s = 0.05\n'
        if sim
        else ""
    )
    return f"""
[gateway]
name = "lantest"
data_dir = "{tmp_path / "data"}"
timezone = "Europe/Copenhagen"

[mqtt]
enabled = false

[http]
bind = "127.0.0.1"
port = 0
{token_line}

[zeroconf]
enabled = {"true" if zeroconf else "false"}
{zeroconf}

[[meters]]
id = "main"
name = "Simulated"

[[meters]]
id = "second"
name = "Fed by the test"
manufacturer = "Kamstrup"
model = "382L"
# The gateway prunes past retention at its first tick: rows the tests place at fixed dates (and a
# year of profile ending now) stay for a century.
[meters.profile]
retention_days = {RETENTION_DAYS}
[meters.analysis]
retention_days = {RETENTION_DAYS}

{module}
"""


@asynccontextmanager
async def running_gateway(text: str) -> AsyncIterator[tuple[Gateway, LanServer, str]]:
    """Gateway.serve() with the LAN output; yields the gateway, the server and its base URL."""
    settings = config.loads(text)
    created: asyncio.Future[LanServer] = asyncio.get_running_loop().create_future()

    def outputs(gateway: GatewayView) -> list[LanServer]:
        server = LanServer(gateway)
        created.set_result(server)
        return [server]

    gateway = Gateway(settings, outputs=outputs)
    serving = asyncio.create_task(gateway.serve())
    try:
        started = asyncio.ensure_future(_started(created))
        done, _ = await asyncio.wait({started, serving}, timeout=15, return_when="FIRST_COMPLETED")
        if serving in done:
            serving.result()  # raises what stopped it
        assert started in done, "the LAN server did not start"
        server = started.result()
        yield gateway, server, f"http://127.0.0.1:{server.port}"
    finally:
        gateway.request_stop()
        await asyncio.wait_for(serving, 15)


async def _started(created: asyncio.Future[LanServer]) -> LanServer:
    server = await created
    await server.started.wait()
    return server


@pytest.fixture
async def lan(tmp_path: Path) -> AsyncIterator[tuple[Gateway, LanServer, str]]:
    async with running_gateway(settings_text(tmp_path)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def feed(gateway: Gateway, at: datetime, **values: Any) -> None:
    """One sample for meter "second": A+ in kWh and P+ in W by default."""
    readings = (
        Reading("1-0:1.8.0", values.get("a_plus", Decimal("1234.567")), "kWh"),
        Reading("1-0:2.8.0", values.get("a_minus", Decimal("12.345")), "kWh"),
        Reading("1-0:1.7.0", values.get("p_plus", 1500.0), "W"),
        Reading("1-0:32.7.0", values.get("u_l1", 231.4), "V"),
    )
    gateway.submit("test", Sample(meter="second", source="test", at=at, readings=readings))


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with http.get(url) as response:
        body = await response.json(content_type=None)
        assert response.status == status, body
        return body


# gateway -----------------------------------------------------------------------------------------


async def test_index_info_and_openapi_cover_every_route(
    lan: Any, http: aiohttp.ClientSession
) -> None:
    _, server, base = lan
    index = await get_json(http, f"{base}/api/v1")
    assert index["openapi"] == "/api/v1/openapi.json"
    info = await get_json(http, f"{base}/api/v1/info")
    assert info["name"] == "lantest"
    assert info["version"] == __version__
    assert info["meters"] == ["main", "second"]
    assert info["http"]["port"] == server.port
    assert info["commands_enabled"] is True
    document = await get_json(http, f"{base}/api/v1/openapi.json")
    assert document["openapi"].startswith("3.")
    app = server.build_app()
    served = {
        resource.canonical
        for resource in app.router.resources()
        if resource.canonical.startswith("/api/")
    }
    # Each command of the table has its own documented path, served by the one command route.
    commands = {path for path in document["paths"] if "/commands/" in path}
    assert (
        served - {"/api/v1/meters/{meter}/commands/{command}"} == set(document["paths"]) - commands
    )
    assert set(document["paths"]) == paths()
    for path, operations in document["paths"].items():
        for operation in operations.values():
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert params == set(_placeholders(path)), path


def _placeholders(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


async def test_health_reports_modules_and_outputs(lan: Any, http: aiohttp.ClientSession) -> None:
    gateway, server, base = lan
    await until(lambda: gateway.health.get("sim1") and gateway.health["sim1"].frames_ok > 2)
    health = await get_json(http, f"{base}/api/v1/health")
    (sim,) = health["modules"]
    assert sim["name"] == "sim1" and sim["type"] == "sim"
    assert sim["state"] == "running" and sim["communicating"] is True
    assert sim["frames_ok"] > 2 and sim["frames_failed"] == 0
    assert datetime.fromisoformat(sim["last_frame_at"]) > gateway.started_at
    assert health["status"] == "ok"
    assert health["outputs"]["http"]["port"] == server.port
    assert health["loop_lag_s"] >= 0


async def test_meters_and_registers(lan: Any, http: aiohttp.ClientSession) -> None:
    gateway, _, base = lan
    feed(gateway, START)
    gateway.flush()  # totals are shown once durable
    meters = await get_json(http, f"{base}/api/v1/meters")
    by_id = {m["id"]: m for m in meters["meters"]}
    assert by_id["second"]["model"] == "382L"
    assert by_id["main"]["modules"] == ["sim1"]
    meter = await get_json(http, f"{base}/api/v1/meters/second")
    assert meter["registers"]["1-0:1.8.0"]["label"] == "Energy import A+"
    # Exact decimals survive as JSON numbers.
    async with http.get(f"{base}/api/v1/meters/second/registers") as response:
        text = await response.text()
    assert '"1-0:1.8.0":{"value":1234.567,"unit":"kWh"' in text
    registers = json.loads(text, parse_float=Decimal)["registers"]
    assert registers["1-0:1.7.0"]["value"] == Decimal("1500.0")
    assert registers["1-0:32.7.0"]["unit"] == "V"
    one = await get_json(http, f"{base}/api/v1/meters/second/registers/1-0:2.8.0")
    assert one["obis"] == "1-0:2.8.0" and one["value"] == 12.345
    missing = await get_json(http, f"{base}/api/v1/meters/second/registers/1-0:99.9.9", 404)
    assert missing["error"]["code"] == "unknown_register"
    unknown = await get_json(http, f"{base}/api/v1/meters/nope/registers", 404)
    assert unknown["error"]["code"] == "unknown_meter"
    assert "second" in unknown["error"]["message"]


async def test_unknown_paths_and_methods_answer_json(lan: Any, http: aiohttp.ClientSession) -> None:
    _, _, base = lan
    body = await get_json(http, f"{base}/api/v1/nothing", 404)
    assert body["error"]["code"] == "not_found"
    async with http.delete(f"{base}/api/v1/meters") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"


# events ------------------------------------------------------------------------------------------


def _events(count: int, start: datetime = START) -> list[Event]:
    return [
        Event(
            meter="second",
            at=start + timedelta(minutes=i),
            kind="over_voltage" if i % 3 == 0 else "clock_adjusted",
            detail=f"event number {i}",
            data={"i": i},
        )
        for i in range(count)
    ]


async def test_events_are_paged_and_filtered(lan: Any, http: aiohttp.ClientSession) -> None:
    gateway, _, base = lan
    for event in _events(30):
        gateway.report(event)
    url = f"{base}/api/v1/events?meter=second"
    first = await get_json(http, f"{url}&limit=10")
    assert [e["detail"] for e in first["events"]] == [f"event number {i}" for i in range(10)]
    second = await get_json(http, f"{url}&limit=10&after_id={first['next_after_id']}")
    assert second["events"][0]["detail"] == "event number 10"
    rest = await get_json(http, f"{url}&limit=100&after_id={second['next_after_id']}")
    assert len(rest["events"]) == 10 and rest["next_after_id"] is None
    kinds = await get_json(http, f"{url}&kind=over_voltage&limit=100")
    assert [e["data"]["i"] for e in kinds["events"]] == list(range(0, 30, 3))
    # 12:05 local (CEST) is 10:05 UTC: minutes 5..9 of the log.
    window = await get_json(http, f"{url}&since=2024-05-01T12:05&until=2024-05-01T10:10:00Z")
    assert [e["data"]["i"] for e in window["events"]] == [5, 6, 7, 8, 9]
    epoch = await get_json(http, f"{url}&since={int((START + timedelta(minutes=28)).timestamp())}")
    assert [e["data"]["i"] for e in epoch["events"]] == [28, 29]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after_id=-1", "after_id"),
        ("since=yesterday", "since"),
        ("until=2024-13-01", "until"),
        ("since=2024-05-02&until=2024-05-01", "until"),
        ("format=xml", "format"),
    ],
)
async def test_bad_event_parameters_are_named(
    lan: Any, http: aiohttp.ClientSession, query: str, parameter: str
) -> None:
    _, _, base = lan
    body = await get_json(http, f"{base}/api/v1/events?{query}", 400)
    assert body["error"]["code"] == "bad_parameter"
    assert body["error"]["parameter"] == parameter
    assert body["error"]["message"].startswith(f"{parameter}:")


@asynccontextmanager
async def gateway_process(tmp_path: Path, fill: Any) -> AsyncIterator[tuple[int, str]]:
    """`meter-gateway run` on a store ``fill(store)`` prepared; yields its pid and base URL."""
    port = free_port()
    text = settings_text(tmp_path, sim=False).replace("port = 0", f"port = {port}")
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(text)
    store = Store(config.loads(text).data_path / STORE_FILE)
    try:
        fill(store)
    finally:
        store.close()
    with process_gateway(config_file, log=tmp_path / "gateway.log") as process:
        await asyncio.to_thread(wait_for_port, port, 20.0)
        yield process.pid, f"http://127.0.0.1:{port}"


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM) in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) * 1024


async def download(http: aiohttp.ClientSession, url: str) -> tuple[int, list[str]]:
    """Stream a body keeping only its first two and last lines (and the line count)."""
    received, count, tail = 0, 0, ""
    head: list[str] = []
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.headers.get("Transfer-Encoding") == "chunked"
        async for line in response.content:
            received += len(line)
            count += 1
            text = line.decode().rstrip("\n")
            if len(head) < 2:
                head.append(text)
            tail = text
    return received, [*head, *([""] * (count - 3)), tail]


async def bounded_download(
    http: aiohttp.ClientSession, pid: int, url: str
) -> tuple[int, list[str]]:
    """Download ``url`` from the gateway process and check its peak memory hardly grew."""
    before = peak_rss(pid)
    received, lines = await download(http, url)
    grown = peak_rss(pid) - before
    # Buffering the range would hold every row as objects and as text: several times `received`.
    assert grown < received / 4, f"peak RSS grew {grown} B for a {received} B download"
    return received, lines


@pytest.mark.slow
async def test_events_csv_streams_in_bounded_memory(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    total = 100_000

    def fill(store: Store) -> None:
        store.add_events(_events(total))

    async with gateway_process(tmp_path, fill) as (pid, base):
        url = f"{base}/api/v1/events?meter=second&format=csv"
        await download(http, f"{url}&since=2024-05-01T10:00Z&until=2024-05-01T11:00Z")  # warm-up
        _, lines = await bounded_download(http, pid, url)
    rows = list(csv.reader(io.StringIO(lines[0] + "\n" + lines[1] + "\n" + lines[-1])))
    assert rows[0] == ["id", "meter", "at", "local_time", "kind", "detail", "data"]
    assert rows[1][5] == "event number 0" and rows[2][5] == f"event number {total - 1}"
    assert rows[1][3] == "2024-05-01T12:00:00+02:00"
    assert len(lines) == total + 1


# profile, analysis, billing ----------------------------------------------------------------------


async def test_ranges_answer_json_and_csv_and_refuse_bad_ranges(
    lan: Any, http: aiohttp.ClientSession
) -> None:
    _, _, base = lan
    meter = f"{base}/api/v1/meters/second"
    today = await get_json(http, f"{meter}/profile")
    assert today["interval_s"] == 900 and isinstance(today["rows"], list)
    since = datetime.fromisoformat(today["since"])
    assert since.astimezone(config.default().zone).time().isoformat() == "00:00:00"
    analysis = await get_json(http, f"{meter}/analysis?since=2024-05-01&until=2024-05-02")
    assert analysis["since"] == "2024-04-30T22:00:00Z" and isinstance(analysis["rows"], list)
    billing = await get_json(http, f"{meter}/billing")
    assert billing["meter"] == "second" and isinstance(billing["periods"], list)
    async with http.get(f"{meter}/profile?format=csv&since=2024-05-01") as response:
        assert response.headers["Content-Type"].startswith("text/csv")
        assert (await response.text()).splitlines()[0].startswith("start,end,local_start")
    for url, parameter in [
        (f"{meter}/profile?interval_s=600", "interval_s"),
        (f"{meter}/profile?since=2024-05-02&until=2024-05-01", "until"),
        (f"{meter}/profile?since=2024-05-01&until=2024-05-01", "until"),
        (f"{meter}/profile?since=noon", "since"),
        (f"{meter}/analysis?until=1714521600&since=1714608000", "until"),
        (f"{meter}/billing?limit=0", "limit"),
        (f"{meter}/billing?before=x", "before"),
        (f"{meter}/billing?format=pdf", "format"),
    ]:
        body = await get_json(http, url, 400)
        assert body["error"]["parameter"] == parameter, url
    missing = await get_json(http, f"{base}/api/v1/meters/nope/profile", 404)
    assert missing["error"]["code"] == "unknown_meter"


@pytest.mark.slow
async def test_a_year_of_5_min_profile_streams_in_bounded_memory(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    from gateway.engine.records import ProfileFlag, ProfileRow  # noqa: PLC0415

    # The year ends now: the gateway prunes past retention at its first tick, whatever the date.
    now = datetime.now(UTC)
    end = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    step = timedelta(minutes=5)
    count = 365 * 288
    start = end - count * step

    def fill(store: Store) -> None:
        store.add_profile(
            "second",
            (
                ProfileRow(
                    start + i * step,
                    start + (i + 1) * step,
                    {"1-0:1.8.0": Decimal(i % 1000) / 1000, "1-0:2.8.0": Decimal("0.000")},
                    ProfileFlag.POWER_OUTAGE if i == 7 else ProfileFlag.NONE,
                )
                for i in range(count)
            ),
        )

    def iso(at: datetime) -> str:
        return at.strftime("%Y-%m-%dT%H:%MZ")

    zone = ZoneInfo("Europe/Copenhagen")
    async with gateway_process(tmp_path, fill) as (pid, base):
        url = f"{base}/api/v1/meters/second/profile?interval_s=300"
        day = f"&since={iso(start + timedelta(days=30))}&until={iso(start + timedelta(days=31))}"
        await download(http, f"{url}{day}&format=csv")  # warm-up
        await download(http, f"{url}{day}&format=json")
        url += f"&since={iso(start)}&until={iso(end)}"
        _, lines = await bounded_download(http, pid, url + "&format=csv")
        assert lines[0] == "start,end,local_start,1-0:1.8.0,1-0:2.8.0,flags"
        assert lines[1] == (
            f"{start.isoformat()},{(start + step).isoformat()},"
            f"{start.astimezone(zone).isoformat()},0,0.000,"
        )
        assert len(lines) == count + 1
        await bounded_download(http, pid, url + "&format=json")
        async with http.get(url) as response:
            body = await response.json()
    assert len(body["rows"]) == count
    assert body["rows"][7]["status"] == ["power_outage"]
    assert body["rows"][999]["values"]["1-0:1.8.0"] == 0.999


async def test_analysis_and_billing_with_data(lan: Any, http: aiohttp.ClientSession) -> None:
    from gateway.engine.records import AnalysisRow, BillingRecord  # noqa: PLC0415

    gateway, _, base = lan
    start = datetime(2024, 5, 1, tzinfo=UTC)
    gateway.store.add_analysis(
        "second",
        [
            AnalysisRow(
                start + timedelta(hours=h),
                start + timedelta(hours=h + 1),
                {"1-0:32.7.0": 230.0 + h},
            )
            for h in range(48)
        ],
    )
    gateway.store.add_billing(
        "second",
        [
            BillingRecord(n, datetime(2024, n, 1, tzinfo=UTC), {"1-0:1.8.0": f"{100 * n}.000"})
            for n in range(1, 6)
        ],
    )
    meter = f"{base}/api/v1/meters/second"
    day = await get_json(http, f"{meter}/analysis?since=2024-05-01T00:00Z&until=2024-05-02T00:00Z")
    assert [r["values"]["1-0:32.7.0"] for r in day["rows"]] == [230.0 + h for h in range(24)]
    async with http.get(
        f"{meter}/analysis?since=2024-05-01T00:00Z&until=2024-05-03T00:00Z&format=csv"
    ) as response:
        lines = (await response.text()).splitlines()
    assert lines[0] == "start,end,local_start,1-0:32.7.0" and len(lines) == 49
    page = await get_json(http, f"{meter}/billing?limit=2")
    assert [p["number"] for p in page["periods"]] == [5, 4]
    assert page["periods"][0]["values"]["1-0:1.8.0"] == "500.000"
    older = await get_json(http, f"{meter}/billing?limit=10&before={page['next_before']}")
    assert [p["number"] for p in older["periods"]] == [3, 2, 1] and older["next_before"] is None
    async with http.get(f"{meter}/billing?format=csv") as response:
        rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == ["number", "at", "local_time", "estimated", "1-0:1.8.0"]
    assert rows[1][0] == "5" and rows[1][4] == "500.000"


# commands ----------------------------------------------------------------------------------------


async def test_commands_need_the_bearer_token(lan: Any, http: aiohttp.ClientSession) -> None:
    gateway, _, base = lan
    calls: list[Command] = []

    async def echo(command: Command) -> Mapping[str, Any]:
        if command.args.get("refuse"):
            raise CommandError(str(command.args["refuse"]), "refused on purpose")
        calls.append(command)
        return {"echo": dict(command.args)}

    gateway.add_command("lan_echo", echo)
    url = f"{base}/api/v1/meters/second/commands/lan_echo"
    body = {"args": {"x": 1}, "id": "cmd-1"}
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ):
        async with http.post(url, json=body, headers=headers) as response:
            assert response.status == 401, headers
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["error"]["code"] == "unauthorized"
    assert calls == [], "a refused command must change nothing"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with http.post(url, json=body, headers=auth) as response:
        assert response.status == 200
        result = await response.json()
    assert result == {
        "ok": True,
        "id": "cmd-1",
        "meter": "second",
        "command": "lan_echo",
        "result": {"echo": {"x": 1}},
    }
    assert calls[0].source == "http" and calls[0].meter == "second"
    async with http.post(url, headers=auth) as response:
        assert response.status == 200  # no body: no args, a generated id
        assert len((await response.json())["id"]) == 36
    listed = await get_json(http, f"{base}/api/v1/meters/second/commands")
    assert "lan_echo" in listed["commands"] and listed["enabled"] is True
    for payload, status, code in [
        (b"{not json", 400, "bad_body"),
        (b"[1, 2]", 400, "bad_body"),
        (b'{"args": ' + b"[" * 1000 + b"]" * 1000 + b"}", 400, "bad_body"),  # was a 500
        (b'{"args": 5}', 400, "bad_parameter"),
        (b'{"argz": {}}', 400, "bad_parameter"),
        (b'{"args": {"refuse": "bad_argument"}}', 400, "bad_argument"),
        (b'{"args": {"refuse": "not_allowed"}}', 409, "not_allowed"),
    ]:
        async with http.post(url, data=payload, headers=auth) as response:
            assert response.status == status, payload
            assert (await response.json())["error"]["code"] == code
    async with http.post(f"{base}/api/v1/meters/second/commands/nope", headers=auth) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "unknown_command"
    async with http.post(f"{base}/api/v1/meters/nope/commands/lan_echo", headers=auth) as response:
        assert response.status == 404
    assert len(calls) == 2


async def test_without_a_configured_token_commands_are_refused(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_gateway(settings_text(tmp_path, token=False, sim=False)) as (
        gateway,
        _,
        base,
    ):
        calls: list[Command] = []

        async def record(command: Command) -> Mapping[str, Any]:
            calls.append(command)
            return {}

        gateway.add_command("lan_echo", record)
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer "}):
            async with http.post(
                f"{base}/api/v1/meters/second/commands/lan_echo", headers=headers
            ) as response:
                assert response.status == 403
                error = (await response.json())["error"]
            assert error["code"] == "commands_disabled"
            assert "http.token_file" in error["message"]
        info = await get_json(http, f"{base}/api/v1/info")
        assert info["commands_enabled"] is False
        assert calls == []


async def test_display_lists_and_push_button(lan: Any, http: aiohttp.ClientSession) -> None:
    gateway, _, base = lan
    feed(gateway, START)
    display = await get_json(http, f"{base}/api/v1/meters/second/display")
    assert display["scroll_s"] == 10.0 and display["manual_timeout_s"] == 120.0
    assert 1 <= len(display["auto"]) <= 16 and 1 <= len(display["manual"]) <= 30
    assert "1-0:1.8.0" in display["auto"]
    assert display["labels"]["1-0:1.8.0"] == "Energy import A+"
    url = f"{base}/api/v1/meters/second/display/push"
    async with http.post(url) as response:
        assert response.status == 401
    assert display["source"] == "engine"  # the engine models the 382L's LCD
    assert display["state"]["list"] == "auto"
    async with http.post(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200, await response.text()
        pushed = (await response.json())["state"]
    assert pushed["list"] == "manual" and pushed["index"] == 0
    again = await get_json(http, f"{base}/api/v1/meters/second/display")
    assert again["state"]["list"] == "manual"


# live stream -------------------------------------------------------------------------------------


async def _sse(response: aiohttp.ClientResponse) -> tuple[str, Any]:
    """The next server-sent event as (event name, decoded data)."""
    name, data = "", ""
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if not line:
            if data:
                return name, json.loads(data)
            continue
        field, _, value = line.partition(": ")
        if field == "event":
            name = value
        elif field == "data":
            data = value


async def _next(response: aiohttp.ClientResponse, kind: str) -> Any:
    while True:
        name, data = await _sse(response)
        if name == kind:
            return data


async def test_stream_sends_snapshot_live_state_and_events(
    lan: Any, http: aiohttp.ClientSession
) -> None:
    gateway, server, base = lan
    feed(gateway, START)
    gateway.flush()
    async with http.get(f"{base}/api/v1/stream?meter=second") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        name, snapshot = await _sse(response)
        assert name == "snapshot"
        assert snapshot["meters"]["second"]["1-0:1.8.0"]["value"] == 1234.567
        assert list(snapshot["meters"]) == ["second"]
        feed(gateway, START + timedelta(seconds=1), p_plus=2222.5, a_plus=Decimal("1234.568"))
        live = await _next(response, "live")
        assert live["meter"] == "second"
        assert live["registers"]["1-0:1.7.0"]["value"] == 2222.5
        # The meter keeps its own totals: shown at once (README "Durability").
        assert live["registers"]["1-0:1.8.0"]["value"] == 1234.568
        state = await _next(response, "state")
        assert state["registers"]["1-0:1.8.0"]["value"] == 1234.568
        gateway.report(
            Event(meter="second", at=START, kind="cover_opened", detail="terminal cover")
        )
        event = await _next(response, "event")
        assert event["kind"] == "cover_opened" and event["id"] > 0
        assert len(server.hub) == 1
    bad = await get_json(http, f"{base}/api/v1/stream?meter=nope", 404)
    assert bad["error"]["parameter"] == "meter"


async def test_stream_sends_closed_profile_intervals(lan: Any, http: aiohttp.ClientSession) -> None:
    gateway, _, base = lan
    feed(gateway, START)
    gateway.flush()
    async with http.get(f"{base}/api/v1/stream?meter=second") as response:
        assert (await _sse(response))[0] == "snapshot"
        # 0.5 kWh in 15 min is a plausible 2 kW; crossing 10:15 closes the first interval.
        feed(gateway, START + timedelta(minutes=15, seconds=1), a_plus=Decimal("1235.067"))
        gateway.flush()
        row = await _next(response, "profile")
    assert row["meter"] == "second"
    assert row["start"] == "2024-05-01T10:00:00Z" and row["end"] == "2024-05-01T10:15:00Z"
    assert 0 < row["values"]["1-0:1.8.0"] <= 0.5
    stored = await get_json(http, f"{base}/api/v1/meters/second/profile?since=2024-05-01")
    assert [r["start"] for r in stored["rows"]] == ["2024-05-01T10:00:00Z"]
    assert stored["rows"][0]["values"] == row["values"]


def test_lan_server_has_every_output_method() -> None:
    from gateway.view import Output  # noqa: PLC0415

    wanted = {name for name in vars(Output) if name.startswith("on_") or name == "run"}
    assert wanted <= set(dir(LanServer))


async def test_slow_stream_is_dropped_not_buffered(lan: Any, http: aiohttp.ClientSession) -> None:
    from gateway.lan.live import MAX_PENDING_FRAMES  # noqa: PLC0415

    gateway, server, _ = lan
    subscriber = server.hub.subscribe("second")
    for i in range(MAX_PENDING_FRAMES + 10):
        feed(gateway, START + timedelta(seconds=i), p_plus=float(i))
    assert subscriber.closed and not subscriber.pending
    assert await subscriber.next(1.0) is None
    server.hub.unsubscribe(subscriber)


# metrics and page --------------------------------------------------------------------------------


async def test_metrics_parse_with_prometheus_client(lan: Any, http: aiohttp.ClientSession) -> None:
    gateway, _, base = lan
    await until(lambda: gateway.health.get("sim1") and gateway.health["sim1"].frames_ok > 0)
    feed(gateway, START)
    gateway.flush()  # totals are shown once durable
    async with http.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    values = {
        (s.labels["meter"], s.labels["obis"]): s.value
        for s in families["meter_gateway_register_value"].samples
    }
    assert values[("second", "1-0:1.8.0")] == 1234.567
    assert values[("second", "1-0:32.7.0")] == 231.4
    frames = families["meter_gateway_module_frames"]
    assert frames.type == "counter"
    ok = [
        s for s in frames.samples if s.labels == {"module": "sim1", "type": "sim", "result": "ok"}
    ]
    assert ok and ok[0].name == "meter_gateway_module_frames_total" and ok[0].value >= 1
    assert families["meter_gateway_module_up"].samples[0].value == 1
    assert families["meter_gateway_loop_lag_seconds"].samples[0].value >= 0
    assert families["meter_gateway_info"].samples[0].labels["name"] == "lantest"
    assert "meter_gateway_module_restarts" in families


async def test_page_and_its_files_are_served(lan: Any, http: aiohttp.ClientSession) -> None:
    _, _, base = lan
    async with http.get(f"{base}/") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        page = await response.text()
    for needle in ('id="lcd"', 'id="push"', 'id="chart-today"', 'id="chart-week"', 'id="events"'):
        assert needle in page
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        async with http.get(f"{base}/static/{name}") as response:
            assert response.status == 200 and kind in response.headers["Content-Type"]
    async with http.get(f"{base}/static/../server.py") as response:
        assert response.status in (403, 404)


async def test_port_in_use_is_retried_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        text = settings_text(tmp_path, sim=False).replace("port = 0", f"port = {port}")
        servers: list[LanServer] = []

        def outputs(gateway: GatewayView) -> list[LanServer]:
            servers.append(LanServer(gateway))
            return servers

        gateway = Gateway(config.loads(text), outputs=outputs)
        serving = asyncio.create_task(gateway.serve())
        await until(lambda: any("cannot listen" in r.getMessage() for r in caplog.records))
        assert not serving.done(), "a busy port must not stop the gateway"
        assert servers[0].port is None
    # The port is free now: the server's next attempt takes it.
    await asyncio.wait_for(servers[0].started.wait(), 10)
    assert servers[0].port == port
    gateway.request_stop()
    await asyncio.wait_for(serving, 15)


@pytest.mark.network
async def test_default_outputs_report_mqtt_state_in_health_and_metrics(
    tmp_path: Path, broker: Any, http: aiohttp.ClientSession
) -> None:
    text = settings_text(tmp_path).replace(
        "[mqtt]\nenabled = false", f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}'
    )
    gateway = Gateway(config.loads(text))  # the default outputs, as `meter-gateway run` has them
    serving = asyncio.create_task(gateway.serve())
    try:
        await asyncio.wait_for(gateway.ready.wait(), 15)
        (server,) = [o for o in gateway.outputs if isinstance(o, LanServer)]
        (mqtt,) = [o for o in gateway.outputs if o.name == "mqtt"]
        await asyncio.wait_for(server.started.wait(), 10)
        await until(lambda: getattr(mqtt, "connected", False), 10)
        base = f"http://127.0.0.1:{server.port}"
        health = await get_json(http, f"{base}/api/v1/health")
        assert health["outputs"]["mqtt"]["connected"] is True
        assert isinstance(health["outputs"]["mqtt"]["outbox_depth"], int)
        async with http.get(f"{base}/metrics") as response:
            families = {f.name: f for f in text_string_to_metric_families(await response.text())}
        connected = {
            s.labels["output"]: s.value for s in families["meter_gateway_output_connected"].samples
        }
        assert connected == {"mqtt": 1.0, "http": 1.0}
        depth = families["meter_gateway_outbox_depth"].samples
        assert [s.labels["output"] for s in depth] == ["mqtt"] and depth[0].value >= 0
        assert families["meter_gateway_outbox_dropped"].type == "counter"
    finally:
        gateway.request_stop()
        await asyncio.wait_for(serving, 15)


async def test_reload_moves_the_server_to_the_new_port(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    first, second = free_port(), free_port()
    text = settings_text(tmp_path, sim=False)
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(text.replace("port = 0", f"port = {first}"))
    servers: list[LanServer] = []

    def outputs(gateway: GatewayView) -> list[LanServer]:
        servers.append(LanServer(gateway))
        return servers

    gateway = Gateway(config.load(config_file), config_path=config_file, outputs=outputs)
    serving = asyncio.create_task(gateway.serve())
    try:
        await asyncio.wait_for(gateway.ready.wait(), 15)
        await asyncio.wait_for(servers[0].started.wait(), 10)
        assert servers[0].port == first
        # Served once (the web server is loaded for this first client), then moved: the loaded
        # server is shut down with the old sockets and serves again on the new ones.
        assert (await get_json(http, f"http://127.0.0.1:{first}/api/v1/info"))["http"][
            "port"
        ] == first
        config_file.write_text(text.replace("port = 0", f"port = {second}"))
        gateway.request_reload()
        await until(lambda: servers[0].port == second, 10)
        info = await get_json(http, f"http://127.0.0.1:{second}/api/v1/info")
        assert info["http"]["port"] == second
        with pytest.raises(aiohttp.ClientConnectionError):
            await get_json(http, f"http://127.0.0.1:{first}/api/v1/info")
    finally:
        gateway.request_stop()
        await asyncio.wait_for(serving, 15)


def _profile_rows(count: int, end: datetime) -> list[Any]:
    from gateway.engine.records import ProfileFlag, ProfileRow  # noqa: PLC0415

    step = timedelta(minutes=5)
    start = end - count * step
    return [
        ProfileRow(
            start + i * step,
            start + (i + 1) * step,
            {"1-0:1.8.0": Decimal(i % 1000) / 1000},
            ProfileFlag.NONE,
        )
        for i in range(count)
    ]


async def test_health_says_when_the_store_cannot_be_written(
    lan: Any, http: aiohttp.ClientSession
) -> None:
    gateway, _, base = lan
    writer = gateway.store._db  # the store's own connection: its writes are what fails
    writer.execute("PRAGMA query_only = ON")  # SQLite refuses every write from here on
    try:
        feed(gateway, datetime.now(UTC))
        gateway.persist()  # what the flush loop does: the write fails, the problem is noted
        health = await get_json(http, f"{base}/api/v1/health")
        assert health["status"] == "error"
        assert health["store"]["writable"] is False
        assert "read-only" in health["store"]["problem"]
    finally:
        writer.execute("PRAGMA query_only = OFF")
    gateway.persist()
    health = await get_json(http, f"{base}/api/v1/health")
    assert health["store"] == {
        "path": str(gateway.store.path),
        "writable": True,
        "problem": None,
    }


async def test_every_output_shows_meter_totals_at_once_and_gateway_counted_ones_from_disk(
    lan: Any, http: aiohttp.ClientSession
) -> None:
    gateway, _, base = lan
    feed(gateway, START)
    await until(lambda: "1-0:1.8.0" in gateway.meters.published("main"), 30)
    writer = gateway.store._db  # the store's own connection: nothing more can be committed
    writer.execute("PRAGMA query_only = ON")
    try:
        on_disk = registers_in(writer, "main")["1-0:1.8.0"].value
        # The sim's totals exist only in the gateway: a kill -9 would bring back what is on
        # disk, so no output may show more, however far the engine has counted meanwhile.
        engine = gateway.engines["main"]
        await until(lambda: engine.registers["1-0:1.8.0"].value > Decimal(on_disk), 30)
        # "second" keeps its own totals: after a power cut its next reading brings them back.
        feed(gateway, START + timedelta(minutes=10), a_plus=Decimal("1234.600"), p_plus=2000.0)
        expected = {("second", "1-0:1.8.0"): 1234.6, ("main", "1-0:1.8.0"): float(on_disk)}
        for (meter_id, code), value in expected.items():
            meter = f"{base}/api/v1/meters/{meter_id}"
            registers = (await get_json(http, f"{meter}/registers"))["registers"]
            assert registers[code]["value"] == value, meter_id
            assert (await get_json(http, f"{meter}/registers/{code}"))["value"] == value
            whole = await get_json(http, meter)
            assert whole["registers"][code]["value"] == value
            async with http.get(f"{base}/api/v1/stream?meter={meter_id}") as response:
                name, snapshot = await _sse(response)
            assert name == "snapshot"
            assert snapshot["meters"][meter_id][code]["value"] == value
        async with http.get(f"{base}/metrics") as response:
            families = {f.name: f for f in text_string_to_metric_families(await response.text())}
        values = {
            (s.labels["meter"], s.labels["obis"]): s.value
            for s in families["meter_gateway_register_value"].samples
        }
        for key, value in expected.items():
            assert values[key] == value, key
    finally:
        writer.execute("PRAGMA query_only = OFF")
    gateway.flush()
    shown = gateway.meters.published("main")["1-0:1.8.0"].value
    assert isinstance(shown, Decimal) and shown > Decimal(on_disk)


async def test_command_arguments_are_typed_and_refusals_name_the_field(
    lan: Any, http: aiohttp.ClientSession
) -> None:
    _, _, base = lan
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{base}/api/v1/meters/second/commands"
    for name, body, field in [
        ("set_limits", b'{"args": {"power_w": 1e308}}', "args.power_w"),
        ("set_limits", b'{"args": {"power_w": NaN}}', "args.power_w"),
        ("set_limits", b'{"args": {"current_a": 1e999999}}', "args.current_a"),
        ("set_display_list", b'{"args": {"list": "auto", "readings": ["x"]}}', "readings[0]"),
        ("set_tariff", b'{"args": {"tariff": "2"}}', "args.tariff"),
        ("debiting_stop", b'{"args": {"junk": 1}}', "takes no arguments"),
    ]:
        async with http.post(f"{url}/{name}", data=body, headers=auth) as response:
            answer = await response.json()
            assert response.status == 400, (name, answer)
        assert answer["error"]["code"] == "bad_argument"
        assert field in answer["error"]["message"], answer
    billing = await get_json(http, f"{base}/api/v1/meters/second/billing")
    assert billing["periods"] == [], "a refused debiting_stop closed no period"


async def test_a_long_download_sees_neither_a_prune_nor_rows_added_meanwhile(lan: Any) -> None:
    gateway, server, _ = lan
    count = 20_000
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    gateway.store.add_profile("second", _profile_rows(count, end))
    path = (
        "/api/v1/meters/second/profile?interval_s=300&format=csv&since=2000-01-01&until=2099-01-01"
    )
    loop = asyncio.get_running_loop()
    # A client with a tiny receive window: the gateway's writes stall after a few kB, so the
    # prune below lands while most of the file is still to be read from the store.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        await loop.sock_sendall(sock, f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
        received = b""
        async with asyncio.timeout(30):
            while len(received) < 8192:
                received += await loop.sock_recv(sock, 4096)
            # The download reads through the one connection, between commits: new rows and a
            # checkpoint commit meanwhile; a prune waits until the download is done.
            gateway.store.add_profile("second", _profile_rows(10, end + timedelta(hours=1)))
            gateway.flush()
            assert gateway.store.long_reads == 1
            assert gateway.store.prune("second", profile_before=end, analysis_before=end) == 0
            while chunk := await loop.sock_recv(sock, 65536):
                received += chunk
    finally:
        sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    lines = body.decode().splitlines()
    assert len(lines) == count + 1  # the header and every row there was when it began
    assert lines[-1].split(",")[3] == str(Decimal((count - 1) % 1000) / 1000)
    assert gateway.store.long_reads == 0
    assert gateway.store.prune("second", profile_before=end, analysis_before=end) == count


async def test_a_download_that_breaks_midway_is_an_error_not_a_short_file(
    lan: Any, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, _, base = lan
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = _profile_rows(5000, end)
    gateway.store.add_profile("second", rows)
    with gateway.store.transaction() as db:  # a row that no longer decodes, after the first batch
        db.execute(
            "UPDATE profile SET values_json = 'not json' WHERE meter = 'second' AND start = ?",
            (rows[2000].start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),),
        )
    url = f"{base}/api/v1/meters/second/profile?interval_s=300&since=2000-01-01"
    for fmt in ("csv", "json"):
        async with http.get(f"{url}&format={fmt}") as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
    aborted = [r for r in caplog.records if "aborted" in r.getMessage()]
    assert len(aborted) == 2
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
