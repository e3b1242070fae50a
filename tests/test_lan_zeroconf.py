"""zeroconf: a DNS-SD browser on loopback finds the gateway, and the service goes on shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from gateway import __version__
from gateway.lan.announce import SERVICE_TYPE, interface_addresses, txt_properties
from tests.test_lan import running_gateway, settings_text

# Multicast works on `lo` here when both ends bind 127.0.0.1 explicitly (python-zeroconf's own
# tests do the same); no network namespace is needed.
LOOPBACK = ["127.0.0.1"]


async def test_browser_finds_the_service_with_port_and_txt(tmp_path: Path) -> None:
    zeroconf_keys = 'interfaces = ["127.0.0.1"]'
    text = settings_text(tmp_path, sim=False, zeroconf=zeroconf_keys)
    browser_zc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    added: asyncio.Queue[str] = asyncio.Queue()
    removed: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            added.put_nowait(name)
        elif state_change is ServiceStateChange.Removed:
            removed.put_nowait(name)

    browser = AsyncServiceBrowser(browser_zc.zeroconf, SERVICE_TYPE, handlers=[on_change])
    try:
        async with running_gateway(text) as (_, server, base):
            name = await asyncio.wait_for(added.get(), 10)
            assert name == f"meter-gateway-lantest.{SERVICE_TYPE}"
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            assert await info.async_request(browser_zc.zeroconf, 3000)
            assert info.port == server.port
            assert info.parsed_addresses() == ["127.0.0.1"]
            txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
            assert txt == {
                "version": __version__,
                "api": "/api/v1",
                "path": "/",
                "name": "lantest",
                "meters": "main,second",
            }
            assert server.zeroconf_status().service == name
            assert base.endswith(f":{info.port}")
        # Shutdown unregisters: the goodbye packet reaches the browser.
        assert await asyncio.wait_for(removed.get(), 10) == name
    finally:
        await browser.async_cancel()
        await browser_zc.async_close()


def test_txt_meters_stay_within_a_txt_string() -> None:
    meters = [f"meter-{i:03d}" for i in range(100)]
    txt = txt_properties("1.0", "/api/v1", meters, "home")
    assert len(txt["meters"]) <= 200
    assert txt["meters"].startswith("meter-000,meter-001")
    assert set(txt["meters"].split(",")) <= set(meters)


def test_interfaces_by_address_or_name() -> None:
    assert interface_addresses(["127.0.0.1"]) == ["127.0.0.1"]
    assert "127.0.0.1" in interface_addresses(["lo"])
    assert interface_addresses(["no-such-interface0"]) == []
