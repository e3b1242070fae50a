"""A real Home Assistant Core, run from the chroot `setup-home-assistant` built, and its APIs.

Home Assistant is set up the way a user does it, only through its own HTTP APIs: onboarding
creates the owner (whose token the REST and WebSocket calls carry), and the MQTT integration is
added by its config flow with the test broker's address.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import signal
import subprocess
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.processes import free_port

CLIENT_ID = "http://127.0.0.1/"  # onboarding ties the owner's first token to a client id
START_TIMEOUT_S = 300.0  # the first start installs the integrations' requirements with pip
REQUEST_TIMEOUT_S = 60.0

CONFIGURATION = """\
homeassistant:
  name: acceptance
  time_zone: UTC
  unit_system: metric
  currency: EUR
  country: DK
  latitude: 55.68
  longitude: 12.57
  elevation: 10
http:
  server_host: 127.0.0.1
  server_port: {port}
logger:
  default: info
recorder:
  commit_interval: 1
energy:
button:
"""


class HomeAssistant:
    """`hass` in the chroot on a free loopback port, with a fresh configuration each time."""

    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = rootfs / "config"
        self.log = self.config / "home-assistant.log"
        self.token = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)

    def start(self) -> None:
        """A fresh configuration directory, then `hass` as the chroot's root."""
        shutil.rmtree(self.config, ignore_errors=True)
        self.config.mkdir()
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        # Only what pip needs: the host's pip settings name paths that are not in the chroot.
        env = {
            "PATH": "/ha/bin:/usr/bin:/bin",
            "HOME": "/root",
            "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
            "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        }
        with (self.rootfs.parent / "hass.out").open("ab") as out:
            self._process = subprocess.Popen(
                [
                    shutil.which("chroot") or "/usr/sbin/chroot",
                    str(self.rootfs),
                    "/ha/bin/hass",
                    "-c",
                    "/config",
                ],
                stdout=out,
                stderr=out,
                env=env,
            )

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def log_lines(self, *levels: str) -> list[str]:
        """Lines of Home Assistant's log at these levels (ERROR, WARNING, ...)."""
        if not self.log.exists():
            return []
        return [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if any(f" {level} (" in line for level in levels)
        ]

    # set-up ------------------------------------------------------------------------------------

    async def onboard(self, http: aiohttp.ClientSession) -> None:
        """Wait until Home Assistant answers, create the owner and keep its token."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"hass exited with {self._process.returncode}; see {self.log}")
            try:
                async with http.get(f"{self.url}/api/onboarding") as response:
                    if response.status == HTTPStatus.OK:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Home Assistant did not answer within {START_TIMEOUT_S} s")
            await asyncio.sleep(1.0)
        owner = {
            "client_id": CLIENT_ID,
            "name": "Acceptance",
            "username": "acceptance",
            "password": "acceptance-password",
            "language": "en",
        }
        async with http.post(f"{self.url}/api/onboarding/users", json=owner) as response:
            response.raise_for_status()
            code = (await response.json())["auth_code"]
        grant = {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID}
        async with http.post(f"{self.url}/auth/token", data=grant) as response:
            response.raise_for_status()
            self.token = (await response.json())["access_token"]

    async def add_mqtt(self, http: aiohttp.ClientSession, broker_port: int) -> None:
        """The MQTT integration's config flow, as a user fills it in."""
        flow = await self.post(http, "config/config_entries/flow", {"handler": "mqtt"})
        assert flow["step_id"] == "broker", flow
        done = await self.post(
            http,
            f"config/config_entries/flow/{flow['flow_id']}",
            {"broker": "127.0.0.1", "port": broker_port},
        )
        assert done["type"] == "create_entry", done

    # REST --------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def get(self, http: aiohttp.ClientSession, path: str) -> Any:
        async with http.get(f"{self.url}/api/{path}", headers=self._headers()) as response:
            response.raise_for_status()
            return await response.json()

    async def post(self, http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
        async with http.post(
            f"{self.url}/api/{path}", json=body, headers=self._headers()
        ) as response:
            if response.status >= HTTPStatus.BAD_REQUEST:
                raise AssertionError(f"POST {path}: {response.status} {await response.text()}")
            return await response.json()

    async def states(self, http: aiohttp.ClientSession) -> dict[str, dict[str, Any]]:
        """entity_id -> state object."""
        return {s["entity_id"]: s for s in await self.get(http, "states")}

    # WebSocket ---------------------------------------------------------------------------------

    async def ws(self, http: aiohttp.ClientSession, message: dict[str, Any]) -> Any:
        """One WebSocket command's result (a connection per command keeps this simple)."""
        async with http.ws_connect(f"{self.url}/api/websocket") as ws:
            assert (await ws.receive_json())["type"] == "auth_required"
            await ws.send_json({"type": "auth", "access_token": self.token})
            assert (await ws.receive_json())["type"] == "auth_ok"
            ident = next(self._ids)
            await ws.send_json({"id": ident, **message})
            while True:
                answer = await ws.receive_json(timeout=REQUEST_TIMEOUT_S)
                if answer.get("id") == ident and answer.get("type") == "result":
                    if not answer["success"]:
                        raise AssertionError(f"{message['type']}: {json.dumps(answer)}")
                    return answer["result"]
