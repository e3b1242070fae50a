"""The web page in headless Chromium (DevTools protocol) against a running `meter-gateway run`.

It must show live values that change, scroll the 382L display by itself, switch to the manual
list on the push button, and run without a JavaScript error. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import math
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from gateway.app import STORE_FILE
from gateway.engine.records import ProfileFlag, ProfileRow
from gateway.store import Store
from tests.support.processes import ROOT, free_port, wait_for_port
from tests.support.processes import gateway as process_gateway

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1500",
    "--remote-debugging-port=0",
)
STARTUP_TIMEOUT_S = 20.0
# The datasheet's auto-scroll period plus slack for a loaded CI machine.
SCROLL_WAIT_S = 13.0
# Chromium's virtual 5 s take a second or two of real time; a busy machine takes longer.
SETTLE_TIMEOUT_S = 45.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make test` does it)"),
]


class DevTools:
    """A minimal Chrome DevTools Protocol client over one browser websocket."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.exceptions: list[str] = []
        self.session: str | None = None
        self._reader = asyncio.create_task(self._read())

    async def call(self, method: str, **params: Any) -> Any:
        """Send a command (to the attached page when there is one) and await its result."""
        message_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        await self._socket.send_str(json.dumps(message))
        return await asyncio.wait_for(future, 15)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float) -> Any:
        """Poll a page expression until it is truthy (the page changes by itself)."""
        deadline = time.monotonic() + timeout_s
        while not (value := await self.evaluate(expression)):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            await asyncio.sleep(0.1)
        return value

    async def screenshot(self, path: Path) -> None:
        """Save a PNG of the page."""
        data = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        png = base64.b64decode(data["data"])
        await asyncio.to_thread(_write, path, png)

    async def close(self) -> None:
        """Stop reading."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _read(self) -> None:
        async for frame in self._socket:
            message = json.loads(frame.data)
            if "id" in message:
                future = self._pending.pop(message["id"], None)
                if future is not None and not future.done():
                    if "error" in message:
                        future.set_exception(AssertionError(message["error"]))
                    else:
                        future.set_result(message.get("result", {}))
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.exceptions.append(
                    details.get("exception", {}).get("description") or details.get("text", "")
                )


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path, url: str) -> AsyncIterator[DevTools]:
    """Headless Chromium with ``url`` open in a page the returned client is attached to."""
    profile = tmp_path / "chromium-profile"
    assert CHROMIUM is not None
    with (tmp_path / "chromium.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (port_file.exists() and len(port_file.read_text().split()) == 2):
            assert process.returncode is None, "chromium exited; see chromium.log"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.1)
        port, path = port_file.read_text().split()
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0) as socket,
        ):
            devtools = DevTools(socket)
            try:
                target = await devtools.call("Target.createTarget", url="about:blank")
                attached = await devtools.call(
                    "Target.attachToTarget", targetId=target["targetId"], flatten=True
                )
                devtools.session = attached["sessionId"]
                await devtools.call("Runtime.enable")
                await devtools.call("Page.enable")
                await devtools.call("Page.navigate", url=url)
                yield devtools
            finally:
                await devtools.close()
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[gateway]
name = "browser"
data_dir = "{tmp_path / "data"}"
timezone = "Europe/Copenhagen"

[mqtt]
enabled = false

[http]
bind = "127.0.0.1"
port = {port}

[zeroconf]
enabled = false

[[meters]]
id = "main"
name = "Simulated 382L"

[[modules]]
type = "sim"
name = "sim1"
meter = "main"
interval_s = 0.5
pv_kwp = 4.0
"""
    )
    return path


LCD = "document.querySelector('#lcd')"


def _fill_profile(data_dir: Path) -> int:
    """A week of 15-min load profile up to the last whole interval; returns the rows written."""
    step = timedelta(minutes=15)
    now = datetime.now(UTC)
    end = now - timedelta(seconds=now.timestamp() % step.total_seconds())
    rows = [
        ProfileRow(
            at,
            at + step,
            {
                # A household curve: evening peak in import, midday export from PV.
                "1-0:1.8.0": Decimal(round(0.05 + 0.2 * max(0.0, math.sin((h - 12) / 4)), 3)),
                "1-0:2.8.0": Decimal(round(0.3 * max(0.0, math.cos((h - 12.5) / 2.5)), 3)),
            },
            ProfileFlag.NONE,
        )
        for at in (end - step * i for i in range(7 * 96, 0, -1))
        for h in [at.astimezone(ZoneInfo("Europe/Copenhagen")).hour + at.minute / 60]
    ]
    store = Store(data_dir / STORE_FILE)
    try:
        store.add_profile("main", rows)
    finally:
        store.close()
    return len(rows)


async def test_page_shows_live_values_and_scrolls_the_display(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, port)
    _fill_profile(tmp_path / "data")
    with process_gateway(config, log=tmp_path / "gateway.log"):
        await asyncio.to_thread(wait_for_port, port, STARTUP_TIMEOUT_S)
        async with chromium(tmp_path, f"http://127.0.0.1:{port}/") as page:
            await page.wait_for(
                "document.body && document.body.dataset.ready === '1'", STARTUP_TIMEOUT_S
            )
            assert await page.evaluate("document.querySelector('#conn').textContent") == "live"
            # Live values: the stream delivers and the power figure on the page changes.
            first = await page.wait_for(
                "document.querySelector('#net-power').textContent.match(/\\d/) &&"
                " [document.querySelector('#net-power').textContent,"
                "  Number(document.body.dataset.updates || 0)]",
                10,
            )
            await page.wait_for(
                f"Number(document.body.dataset.updates) > {first[1] + 2} &&"
                f" document.querySelector('#net-power').textContent !== {json.dumps(first[0])}",
                10,
            )
            volts = await page.evaluate(
                "document.querySelector('.tile[data-obis=\"1-0:32.7.0\"] .v').textContent"
            )
            assert 200 < float(volts) < 260
            # The LCD: an OBIS id, a value, a unit, a quadrant and the three phase indicators.
            lcd = await page.wait_for(
                f"{LCD}.dataset.obis && {{obis: {LCD}.dataset.obis, list: {LCD}.dataset.list,"
                " id: document.querySelector('#lcd-id').textContent.trim(),"
                " value: document.querySelector('#lcd-value').textContent.trim(),"
                " unit: document.querySelector('#lcd-unit').textContent,"
                " q: document.querySelector('#lcd-quadrant').dataset.q,"
                " phases: [1, 2, 3].map((i) =>"
                "   document.querySelector('#lcd-l' + i).classList.contains('on'))}",
                10,
            )
            assert lcd["list"] == "auto"
            assert lcd["obis"].endswith(lcd["id"]) and len(lcd["id"]) <= 7
            assert lcd["value"] and lcd["value"] != "--------"
            assert lcd["q"] in {"1", "2", "3", "4"}
            assert lcd["phases"] == [True, True, True]
            await page.screenshot(ARTIFACTS / "web-page-auto.png")
            # Auto scroll: within one 10 s period the display moves on by itself.
            shown = lcd["obis"]
            moved = await page.wait_for(
                f"{LCD}.dataset.obis !== {json.dumps(shown)} && {LCD}.dataset.list === 'auto'"
                f" && {LCD}.dataset.obis",
                SCROLL_WAIT_S,
            )
            assert moved != shown
            # Push button: the manual list, stepping one reading per push.
            await page.evaluate("document.querySelector('#push').click()")
            manual = await page.evaluate(
                f"[{LCD}.dataset.list, {LCD}.dataset.index, {LCD}.dataset.obis,"
                " document.querySelector('#lcd-list').textContent]"
            )
            assert manual[0] == "manual" and manual[1] == "0" and manual[3] == "MAN"
            await page.evaluate("document.querySelector('#push').click()")
            stepped = await page.evaluate(f"[{LCD}.dataset.index, {LCD}.dataset.obis]")
            assert stepped[0] == "1" and stepped[1] != manual[2]
            await page.screenshot(ARTIFACTS / "web-page-manual.png")
            # The charts: today's load profile bars and a week of daily import/export bars.
            bars = await page.evaluate(
                "[...document.querySelectorAll('#chart-today rect.import')].length"
            )
            assert bars >= 1  # one per whole 15 min since local midnight
            heights = await page.evaluate(
                "[...document.querySelectorAll('#chart-week rect.import')]"
                ".map((r) => Number(r.getAttribute('height')))"
            )
            assert len(heights) == 7 and all(h > 0 for h in heights[1:])
            assert "kWh per day" in await page.evaluate(
                "document.querySelector('#week-note').textContent"
            )
            # Axis labels keep every decimal of their step: 0.025 steps never read 0.03 twice.
            svg = "document.createElementNS('http://www.w3.org/2000/svg', 'svg')"
            labels = await page.evaluate(
                f"(() => {{ const s = {svg}; axes(s, {{left: 40, right: 200, top: 0, bottom: 100}},"
                " {min: 0, max: 0.1, step: 0.025}, 'kWh');"
                " return [...s.querySelectorAll('text')].map((t) => t.textContent); })()"
            )
            assert labels[:5] == ["0.000", "0.025", "0.050", "0.075", "0.100"]
            # A favicon of its own: no request for /favicon.ico left to fail.
            icon = await page.evaluate("document.querySelector('link[rel=icon]').href")
            assert icon.startswith("data:image/svg+xml")
            assert page.exceptions == []


async def test_a_snapshot_page_settles_for_a_headless_screenshot(tmp_path: Path) -> None:
    """`?live=0`: Chromium's own `--virtual-time-budget` (which waits for every request to end)
    finishes and the DOM it dumps holds the meter's values; the live page's stream never ends."""
    assert CHROMIUM is not None
    port = free_port()
    config = _config(tmp_path, port)
    with process_gateway(config, log=tmp_path / "gateway.log"):
        await asyncio.to_thread(wait_for_port, port, STARTUP_TIMEOUT_S)
        async with aiohttp.ClientSession() as http:  # the sim's first sample is in
            url = f"http://127.0.0.1:{port}/api/v1/meters/main/registers"

            async def has_registers() -> bool:
                async with http.get(url) as response:
                    return bool((await response.json())["registers"])

            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not await has_registers():
                assert time.monotonic() < deadline, "no registers from the sim"
                await asyncio.sleep(0.2)
        flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--remote-debugging")]
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *flags,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            f"http://127.0.0.1:{port}/?live=0",
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                dom, _ = await process.communicate()
        except TimeoutError:
            pytest.fail(f"the ?live=0 page did not settle within {SETTLE_TIMEOUT_S} s")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    html = dom.decode()
    assert 'data-ready="1"' in html, "the page finished loading"
    assert ">snapshot<" in html
    volts = re.search(r'data-obis="1-0:32\.7\.0".*?class="v[^"]*">([^<]+)<', html, re.S)
    assert volts is not None and 200 < float(volts.group(1)) < 260, html[:2000]
