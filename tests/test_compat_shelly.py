"""The Shelly stand-in: aioshelly (Home Assistant's Shelly library) sets it up as a Pro 3EM,
the HTTP and UDP RPC answer as the published Gen2 API describes, writes are refused, and mDNS
announces it under both service types Shelly devices use."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aioshelly.common import ConnectionOptions, get_info
from aioshelly.exceptions import RpcCallError
from aioshelly.rpc_device import RpcDevice
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from gateway.compat.shelly import UDP_REPLIES_PER_S, ShellyServer
from tests.support.compat import compat_gateway, fed, settings_text
from tests.support.gateway import until

SECTION = (
    '[shelly]\nenabled = true\nbind = "127.0.0.1"\nport = 0\nudp_ports = [0]\n'
    'mac = "02AABBCCDDEE"\n'
)


def shelly_of(servers: list[Any]) -> ShellyServer:
    (server,) = servers
    assert isinstance(server, ShellyServer)
    return server


def port_of(servers: list[Any]) -> int:
    """The port the one Shelly server listens on (bound before the gateway is handed out)."""
    port = shelly_of(servers).port
    assert port is not None
    return port


async def test_aioshelly_sets_it_up_as_a_pro_3em(tmp_path: Path) -> None:
    async with (
        compat_gateway(settings_text(tmp_path, SECTION)) as (gateway, servers),
        aiohttp.ClientSession() as session,
    ):
        port = port_of(servers)
        await fed(gateway)
        info = await get_info(session, "127.0.0.1", port=port)
        assert (info["gen"], info["model"], info["mac"]) == (2, "SPEM-003CEBEU", "02AABBCCDDEE")
        options = ConnectionOptions("127.0.0.1", port=port)
        device = await RpcDevice.create(session, None, options)
        try:
            await device.initialize()
            assert device.initialized
            assert device.model == "SPEM-003CEBEU"
            assert device.gen == 2
            em = device.status["em:0"]
            data = device.status["emdata:0"]
        finally:
            await device.shutdown()
    assert em["total_act_power"] == -700.0
    assert (em["a_act_power"], em["b_act_power"], em["c_act_power"]) == (300.0, -1200.0, 200.0)
    assert (em["a_voltage"], em["b_current"], em["c_freq"]) == (231.4, 5.25, 50.0)
    assert em["total_current"] == 7.75
    assert data["total_act"] == 1234567.0  # Wh
    assert data["total_act_ret"] == 12345.0
    assert data["b_total_act_energy"] == 434567.0
    assert data["b_total_act_ret_energy"] == 10345.0


# The Gen2 API's EM.GetStatus and EMData.GetStatus keys of a Pro 3EM.
EM_KEYS = {
    "id", "n_current", "total_current", "total_act_power", "total_aprt_power",
    "user_calibrated_phase",
    *(f"{p}_{k}" for p in "abc" for k in ("current", "voltage", "act_power", "aprt_power")),
    *(f"{p}_{k}" for p in "abc" for k in ("pf", "freq")),
}  # fmt: skip
EMDATA_KEYS = {
    "id", "total_act", "total_act_ret",
    *(f"{p}_total_act_energy" for p in "abc"),
    *(f"{p}_total_act_ret_energy" for p in "abc"),
}  # fmt: skip


async def test_http_rpc_answers_like_the_device(tmp_path: Path) -> None:
    async with (
        compat_gateway(settings_text(tmp_path, SECTION)) as (gateway, servers),
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{shelly_of(servers).port}"
        await fed(gateway)
        async with http.get(f"{base}/rpc/EM.GetStatus?id=0") as response:
            assert response.status == 200
            em = await response.json()
        assert set(em) == EM_KEYS
        assert em["total_act_power"] == -700.0
        async with http.get(f"{base}/rpc/EMData.GetStatus?id=0") as response:
            data = await response.json()
        assert set(data) == EMDATA_KEYS
        assert data["total_act"] == 1234567.0
        async with http.get(f"{base}/rpc/Shelly.GetDeviceInfo") as response:
            info = await response.json()
        assert info["id"] == "shellypro3em-02aabbccddee"
        assert info["app"] == "Pro3EM" and info["profile"] == "triphase"
        # A JSON-RPC frame by POST, as scripts and some batteries send it.
        frame = {"id": 7, "src": "battery", "method": "EM.GetStatus", "params": {"id": 0}}
        async with http.post(f"{base}/rpc", json=frame) as response:
            reply = await response.json()
        assert reply["id"] == 7 and reply["dst"] == "battery"
        assert reply["src"] == "shellypro3em-02aabbccddee"
        assert reply["result"]["total_act_power"] == -700.0
        async with http.post(f"{base}/rpc", data=b"[1, 2") as response:
            assert response.status == 400
            assert "no JSON-RPC frame" in (await response.json())["message"]
        # Read-only: setters, reboots and counter resets are refused, naming the call.
        for method in ("Switch.Set", "EMData.ResetCounters", "Shelly.Reboot", "Sys.SetConfig"):
            async with http.get(f"{base}/rpc/{method}?id=0&on=true") as response:
                body = await response.json()
                assert response.status == 400, method
                assert body["message"] == f"{method} refused: this Shelly stand-in is read-only"
        async with http.get(f"{base}/rpc/Cover.GetStatus?id=0") as response:
            assert response.status == 404
            assert (await response.json())["message"] == "No handler for Cover.GetStatus"
        async with http.get(f"{base}/rpc/EM.GetStatus?id=1") as response:
            assert response.status == 400
            assert (await response.json())["code"] == -105
        # The totals are what they were: nothing above changed the meter.
        async with http.get(f"{base}/rpc/EMData.GetStatus?id=0") as response:
            assert (await response.json())["total_act"] == 1234567.0


async def test_aioshelly_writes_are_refused(tmp_path: Path) -> None:
    async with (
        compat_gateway(settings_text(tmp_path, SECTION)) as (_, servers),
        aiohttp.ClientSession() as session,
    ):
        options = ConnectionOptions("127.0.0.1", port=port_of(servers))
        device = await RpcDevice.create(session, None, options)
        try:
            await device.initialize()
            with pytest.raises(RpcCallError) as caught:
                await device.call_rpc("Switch.Set", {"id": 0, "on": True})
            assert caught.value.code == -103
            with pytest.raises(RpcCallError):
                await device.trigger_reboot()
        finally:
            await device.shutdown()


async def test_udp_rpc_as_batteries_poll_it(tmp_path: Path) -> None:
    async with compat_gateway(settings_text(tmp_path, SECTION)) as (gateway, servers):
        server = shelly_of(servers)
        await fed(gateway)
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                replies.put_nowait(data)

        transport, _ = await loop.create_datagram_endpoint(
            Client, remote_addr=("127.0.0.1", server.udp_bound[0]), family=socket.AF_INET
        )
        try:
            transport.sendto(b'{"id":1,"method":"EM.GetStatus","params":{"id":0}}')
            reply = msgspec.json.decode(await asyncio.wait_for(replies.get(), 10))
            assert reply["id"] == 1
            assert reply["src"] == "shellypro3em-02aabbccddee"
            assert set(reply["result"]) == EM_KEYS
            assert reply["result"]["total_act_power"] == -700.0
            transport.sendto(b'{"id":2,"method":"Switch.Set","params":{"id":0,"on":true}}')
            refused = msgspec.json.decode(await asyncio.wait_for(replies.get(), 10))
            assert refused["id"] == 2 and refused["error"]["code"] == -103
            # Garbage gets no answer (a reflector must not amplify); the next call still does.
            transport.sendto(b"\xff" * 64)
            transport.sendto(b'{"id":3,"method":"EMData.GetStatus","params":{"id":0}}')
            third = msgspec.json.decode(await asyncio.wait_for(replies.get(), 10))
            assert third["id"] == 3 and third["result"]["total_act_ret"] == 12345.0
            # A flood is answered only up to the rate a poller needs, then withheld.
            for number in range(4 * UDP_REPLIES_PER_S):
                transport.sendto(b'{"id":%d,"method":"EM.GetStatus"}' % (100 + number))
            await until(lambda: server.udp_withheld > 0, 10, "a flood withheld")
            answered = server.udp_answered
            assert answered <= 3 + 2 * UDP_REPLIES_PER_S  # at most two one-second windows
        finally:
            transport.close()


async def test_pro_em_model_answers_em1(tmp_path: Path) -> None:
    section = SECTION + 'model = "proem"\n'
    async with (
        compat_gateway(settings_text(tmp_path, section)) as (gateway, servers),
        aiohttp.ClientSession() as session,
    ):
        port = port_of(servers)
        await fed(gateway)
        device = await RpcDevice.create(session, None, ConnectionOptions("127.0.0.1", port=port))
        try:
            await device.initialize()
            assert device.model == "SPEM-002CEBEU50"
            channel = device.status["em1:0"]
            energy = device.status["em1data:0"]
        finally:
            await device.shutdown()
        async with session.get(f"http://127.0.0.1:{port}/rpc/EM.GetStatus?id=0") as response:
            assert response.status == 404  # a Pro EM has no three-phase EM component
    assert channel["act_power"] == -700.0
    assert channel["current"] == 7.75
    assert energy == {"id": 0, "total_act_energy": 1234567.0, "total_act_ret_energy": 12345.0}


async def test_announced_like_a_gen2_shelly(tmp_path: Path) -> None:
    text = settings_text(tmp_path, SECTION).replace(
        "[zeroconf]\nenabled = false", '[zeroconf]\nenabled = true\ninterfaces = ["127.0.0.1"]'
    )
    browser_zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    added: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            added.put_nowait((service_type, name))

    types = ["_shelly._tcp.local.", "_http._tcp.local."]
    browser = AsyncServiceBrowser(browser_zc.zeroconf, types, handlers=[on_change])
    try:
        async with compat_gateway(text) as (_, servers):
            found = dict([await asyncio.wait_for(added.get(), 10) for _ in types])
            assert set(found) == set(types)
            txts = {}
            for service_type, name in found.items():
                assert name == f"shellypro3em-02aabbccddee.{service_type}"
                info = AsyncServiceInfo(service_type, name)
                assert await info.async_request(browser_zc.zeroconf, 3000)
                assert info.port == shelly_of(servers).port
                txts[service_type] = {
                    k.decode(): (v or b"").decode() for k, v in info.properties.items()
                }
            assert txts["_shelly._tcp.local."] == {"gen": "2", "app": "Pro3EM", "ver": "1.4.4"}
            assert txts["_http._tcp.local."]["id"] == "shellypro3em-02aabbccddee"
            assert txts["_http._tcp.local."]["gen"] == "2"
    finally:
        await browser.async_cancel()
        await browser_zc.async_close()
