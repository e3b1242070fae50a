"""conf/grafana: every metric the dashboard queries is in a real gateway's /metrics, and every
register name it filters on is one the gateway can label a register with."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import config, obis
from gateway.app import Gateway
from gateway.lan import LanServer
from tests.support.gateway import until
from tests.support.processes import ROOT, Broker
from tests.test_lan import settings_text

DASHBOARD = ROOT / "conf" / "grafana" / "meter-gateway.json"
_METRIC = re.compile(r"\bmeter_gateway_[a-z_]+\b")
_NAME_FILTER = re.compile(r'\bname(=~|=)"([^"]*)"')


def expressions(document: Any) -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and template queries."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            else:
                found += expressions(value)
    elif isinstance(document, list):
        for item in document:
            found += expressions(item)
    return found


def test_dashboard_is_importable_json() -> None:
    document = json.loads(DASHBOARD.read_text())
    assert document["uid"] == "meter-gateway"
    panels = [p for p in document["panels"] if p["type"] != "row"]
    assert panels and all(p["targets"] for p in panels)
    ids = [p["id"] for p in document["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.network
async def test_every_queried_metric_exists_in_a_real_scrape(tmp_path: Path, broker: Broker) -> None:
    queried = {
        m for e in expressions(json.loads(DASHBOARD.read_text())) for m in _METRIC.findall(e)
    }
    text = settings_text(tmp_path).replace(
        "[mqtt]\nenabled = false", f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}'
    )
    # The daemon's own outputs (MQTT bridge and LAN server), as `meter-gateway run` has them.
    gateway = Gateway(config.loads(text))
    serving = asyncio.create_task(gateway.serve())
    try:
        await until(lambda: gateway.ready.is_set() or serving.done(), 15, "gateway ready")
        (lan,) = [o for o in gateway.outputs if isinstance(o, LanServer)]
        # Let the sim meter send, a flush commit its totals, and the MQTT bridge connect.
        await until(
            lambda: (
                lan.port is not None
                and any(h.frames_ok for h in gateway.health.values())
                and "1-0:1.8.0" in gateway.meters.published("main")
                and any(getattr(o, "connected", False) is True for o in gateway.outputs)
            ),
            20,
            "sim frames, committed totals and MQTT connected",
        )
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{lan.port}/metrics") as response,
        ):
            scrape = await response.text()
    finally:
        gateway.request_stop()
        await asyncio.wait_for(serving, 15)
    exposed = set()
    for family in text_string_to_metric_families(scrape):
        exposed |= {sample.name for sample in family.samples}
    missing = sorted(queried - exposed)
    assert not missing, f"the dashboard queries metrics /metrics does not have: {missing}"


def test_register_names_in_filters_exist() -> None:
    names = {quantity.name for quantity in obis.KNOWN.values()}
    for expression in expressions(json.loads(DASHBOARD.read_text())):
        for operator, value in _NAME_FILTER.findall(expression):
            if operator == "=":
                assert value in names, f"{value!r} in {expression!r}"
            else:
                pattern = re.compile(value)
                assert any(pattern.fullmatch(n) for n in names), f"{value!r} matches no register"
