"""The HomeWizard P1 stand-in: HomeWizard's own client library reads it, the documented shape
holds, writes are refused, and mDNS announces it as HomeWizard devices announce themselves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from homewizard_energy import HomeWizardEnergy
from homewizard_energy.errors import RequestError, UnsupportedError
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from gateway import __version__, config
from gateway.compat.homewizard import SERVICE_TYPE, HomeWizardServer
from gateway.errors import ConfigError
from tests.support.compat import compat_gateway, fed, settings_text

SECTION = '[homewizard]\nenabled = true\nbind = "127.0.0.1"\nport = 0\nserial = "5C2FAF0A1B2C"\n'

# Every field /api/v1/data may carry for a P1 meter, with its unit in the name (the v1 API
# description); the stand-in must never invent a name outside it.
DOCUMENTED = {
    "wifi_ssid", "wifi_strength", "smr_version", "meter_model", "unique_id", "active_tariff",
    "total_power_import_kwh", "total_power_import_t1_kwh", "total_power_import_t2_kwh",
    "total_power_import_t3_kwh", "total_power_import_t4_kwh", "total_power_export_kwh",
    "total_power_export_t1_kwh", "total_power_export_t2_kwh", "total_power_export_t3_kwh",
    "total_power_export_t4_kwh", "active_power_w", "active_power_l1_w", "active_power_l2_w",
    "active_power_l3_w", "active_voltage_l1_v", "active_voltage_l2_v", "active_voltage_l3_v",
    "active_current_l1_a", "active_current_l2_a", "active_current_l3_a", "active_frequency_hz",
    "voltage_sag_l1_count", "voltage_sag_l2_count", "voltage_sag_l3_count",
    "voltage_swell_l1_count", "voltage_swell_l2_count", "voltage_swell_l3_count",
    "any_power_fail_count", "long_power_fail_count", "active_power_average_w",
    "montly_power_peak_w", "montly_power_peak_timestamp", "total_gas_m3", "gas_timestamp",
    "gas_unique_id", "external",
}  # fmt: skip


async def test_the_homewizard_client_reads_the_meter(tmp_path: Path) -> None:
    async with compat_gateway(settings_text(tmp_path, SECTION)) as (gateway, servers):
        (server,) = servers
        assert isinstance(server, HomeWizardServer)
        await fed(gateway)
        tariff = gateway.meters.published("house")["0-0:96.14.0"].value
        async with HomeWizardEnergy(f"127.0.0.1:{server.port}") as api:
            device = await api.device()
            data = await api.data()
            with pytest.raises(UnsupportedError):
                await api.state()  # a P1 meter has no switch
            with pytest.raises(UnsupportedError):
                await api.system()
    assert (device.product_type, device.product_name) == ("HWE-P1", "P1 meter")
    assert device.serial == "5c2faf0a1b2c"
    assert device.api_version == "v1"
    assert device.firmware_version == __version__
    assert data.total_energy_import_kwh == 1234.567
    assert data.total_energy_import_t1_kwh == 1000.5
    assert data.total_energy_import_t2_kwh == 234.067
    assert data.total_energy_export_kwh == 12.345
    # Net power, negative while exporting, overall and per phase.
    assert data.active_power_w == -700
    assert (data.active_power_l1_w, data.active_power_l2_w, data.active_power_l3_w) == (
        300,
        -1200,
        200,
    )
    assert data.active_voltage_l2_v == 232.0
    assert data.active_current_l2_a == 5.25
    assert data.active_frequency_hz == 50.02
    assert data.meter_model == "Kamstrup 382L"
    assert data.smr_version == 50
    assert data.unique_meter_id == "house"  # hex-coded on the wire, decoded by the client
    assert data.total_gas_m3 is None and data.external_devices == {}
    assert data.active_tariff == tariff


async def test_documented_shape_and_refusals(tmp_path: Path) -> None:
    async with (
        compat_gateway(settings_text(tmp_path, SECTION)) as (gateway, servers),
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{servers[0].port}"
        async with http.get(f"{base}/api/v1/data") as response:
            empty = await response.json()
            assert response.status == 200
            assert response.content_type == "application/json"
        # Before any sample: only what the device itself knows, no invented zeros.
        assert "active_power_w" not in empty and empty["smr_version"] == 50
        await fed(gateway)
        async with http.get(f"{base}/api/v1/data") as response:
            data = await response.json()
        assert set(data) <= DOCUMENTED
        assert {k for k, v in data.items() if v is None} == set()
        assert data["total_power_import_kwh"] == 1234.567
        assert "total_power_import_t3_kwh" not in data  # the meter has no T3 register
        async with http.get(f"{base}/api") as response:
            assert await response.json() == {
                "product_type": "HWE-P1",
                "product_name": "P1 meter",
                "serial": "5c2faf0a1b2c",
                "firmware_version": __version__,
                "api_version": "v1",
            }
        for method, path in (
            ("PUT", "/api/v1/state"),
            ("PUT", "/api/v1/system"),
            ("PUT", "/api/v1/identify"),
            ("POST", "/api/v1/data"),
            ("DELETE", "/api"),
        ):
            async with http.request(method, f"{base}{path}", json={"power_on": False}) as response:
                body = await response.json()
                assert response.status == 405, (method, path)
                assert "read-only" in body["error"]["description"]
        async with http.get(f"{base}/api/v2/data") as response:
            assert response.status == 404
            assert (await response.json())["error"]["id"] == 201
        # Nothing a refused write sent changed what the device says.
        async with http.get(f"{base}/api/v1/data") as response:
            assert (await response.json())["active_power_w"] == -700


async def test_writes_through_the_client_are_refused(tmp_path: Path) -> None:
    async with compat_gateway(settings_text(tmp_path, SECTION)) as (_, servers):
        api = HomeWizardEnergy(f"127.0.0.1:{servers[0].port}")
        try:
            with pytest.raises(RequestError):
                await api.system_set(cloud_enabled=True)
        finally:
            await api.close()


async def test_announced_as_a_p1_meter(tmp_path: Path) -> None:
    text = settings_text(tmp_path, SECTION).replace(
        "[zeroconf]\nenabled = false", '[zeroconf]\nenabled = true\ninterfaces = ["127.0.0.1"]'
    )
    browser_zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    added: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            added.put_nowait(name)

    browser = AsyncServiceBrowser(browser_zc.zeroconf, SERVICE_TYPE, handlers=[on_change])
    try:
        async with compat_gateway(text) as (_, servers):
            name = await asyncio.wait_for(added.get(), 10)
            assert name == f"p1meter-0a1b2c.{SERVICE_TYPE}"
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            assert await info.async_request(browser_zc.zeroconf, 3000)
            assert info.port == servers[0].port
            txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
            assert txt == {
                "api_enabled": "1",
                "path": "/api/v1",
                "serial": "5c2faf0a1b2c",
                "product_type": "HWE-P1",
                "product_name": "P1 meter",
            }
    finally:
        await browser.async_cancel()
        await browser_zc.async_close()


@pytest.mark.parametrize(
    ("section", "path", "words"),
    [
        ('[homewizard]\nenabled = true\nmeter = "garage"\n', "homewizard.meter", "garage"),
        ('[homewizard]\nenabled = true\nserial = "xyz"\n', "homewizard.serial", "12 hex"),
        ("[homewizard]\nenabled = true\nport = 70000\n", "homewizard.port", "0..65535"),
        (
            '[homewizard]\nenabled = true\nbind = "127.0.0.1"\nport = 8382\n'
            '[shelly]\nenabled = true\nbind = "127.0.0.1"\nport = 8382\n',
            "shelly.port",
            "clashes with [homewizard]",
        ),
        (
            "[homewizard]\nenabled = true\nport = 8080\n"
            '[shelly]\nenabled = true\nbind = "127.0.0.1"\nport = 8080\n',
            "shelly.port",
            "clashes with [homewizard] on 0.0.0.0:8080",
        ),
    ],
)
def test_config_mistakes_name_the_key(tmp_path: Path, section: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.loads(settings_text(tmp_path, section))
    assert caught.value.path == path
    assert words in str(caught.value)


def test_the_lan_api_port_is_not_given_twice(tmp_path: Path) -> None:
    text = settings_text(tmp_path, "[homewizard]\nenabled = true\n").replace(
        "[http]\nenabled = false", '[http]\nbind = "0.0.0.0"\nport = 80'
    )
    with pytest.raises(ConfigError) as caught:
        config.loads(text)
    assert caught.value.path == "homewizard.port"
    assert "clashes with [http] on 0.0.0.0:80" in str(caught.value)
