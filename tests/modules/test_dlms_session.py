"""The DLMS client against the emulator's DLMS server: TCP wrapper on loopback, HDLC on a pty."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.errors import CommandError, FatalAdapterError
from gateway.model import Command
from gateway.transport import Link, open_link, open_pty, serve_tcp
from modules.codecs.dlms.apdu import (
    MECHANISM_HLS_GMAC,
    decode_aare,
    decode_action_response,
    encode_aarq,
    encode_action_request,
    encode_get_request,
    initiate_request,
)
from modules.codecs.dlms.axdr import DOUBLE_LONG_UNSIGNED, STRUCTURE, Data
from modules.codecs.dlms.hdlc import parse_frame
from modules.codecs.dlms.security import GlobalCiphering, check_hls_gmac, hls_gmac
from modules.codecs.dlms.stream import HanSplitter
from modules.dlms import poll as dlms_poll
from modules.dlms import transports
from modules.dlms.config import DlmsOptions
from modules.dlms.server import CosemServer, HdlcResponder
from modules.dlms.session import (
    DEFAULT_CLIENT_TITLE,
    ClientSettings,
    ControlState,
    open_client,
)
from modules.dlms.transports import Addresses
from modules.p1.emulator import serve_dlms
from modules.p1.meter_model import EmulatedMeter, cosem_objects
from tests.modules.test_p1 import register, settings_for
from tests.support.gateway import running, until
from tests.support.processes import GATEWAY, free_port, wait_for_port

PASSWORD = b"12345678"


@asynccontextmanager
async def wrapper_server(
    meter: EmulatedMeter,
    *,
    max_pdu: int = 0x0400,
    links: list[Link] | None = None,
    transport: str = "wrapper",
    keys: tuple[bytes, bytes | None] | None = None,
) -> AsyncIterator[tuple[str, list[CosemServer]]]:
    """The emulator's DLMS server on a loopback port; yields its URL and its sessions."""
    servers: list[CosemServer] = []

    async def handler(link: Link) -> None:
        server = CosemServer(cosem_objects(meter), password=PASSWORD, max_pdu=max_pdu, keys=keys)
        servers.append(server)
        if links is not None:
            links.append(link)
        await serve_dlms(link, server, transport=transport)

    port = free_port()
    async with await serve_tcp(port, handler):
        yield f"tcp://127.0.0.1:{port}", servers


async def test_get_session_over_the_tcp_wrapper() -> None:
    meter = EmulatedMeter()
    async with (
        wrapper_server(meter) as (url, servers),
        open_link(url) as link,
        open_client(link, ClientSettings()) as client,
    ):
        assert client.association is not None and client.association.accepted
        energy = await client.get(3, "1-0:1.8.0")
        assert energy == Data(DOUBLE_LONG_UNSIGNED, int(meter.import_wh))
        scaler_unit = await client.get(3, "1-0:32.7.0", 3)
        assert scaler_unit.tag == STRUCTURE
        assert [item.value for item in scaler_unit.items] == [-1, 35]  # 0.1 V
        results = await client.get_many(
            [(3, "1-0:1.8.0", 2), (3, "9-9:9.9.9", 2), (8, "0-0:1.0.0", 2), (1, "0-0:96.1.0", 2)]
        )
        assert results[0] == energy
        assert results[1] == 4  # object-undefined, the others still answered
        clock = results[2]
        assert isinstance(clock, Data) and isinstance(clock.value, bytes)
        assert len(clock.value) == 12
        assert results[3] == Data(0x0A, meter.serial)
        with pytest.raises(CommandError, match="object_undefined"):
            await client.get(3, "9-9:9.9.9")
        # The public client may read but not switch the supply.
        with pytest.raises(CommandError, match="read_write_denied"):
            await client.remote_disconnect()
        assert meter.connected
    assert servers[0].associated is False  # released on the way out


async def test_action_disconnect_and_reconnect_change_the_meter() -> None:
    meter = EmulatedMeter()
    settings = ClientSettings(password=PASSWORD, addresses=Addresses(client=1))
    async with (
        wrapper_server(meter) as (url, _servers),
        open_link(url) as link,
        open_client(link, settings) as client,
    ):
        assert await client.control_state() is ControlState.CONNECTED
        assert await client.remote_disconnect() is ControlState.DISCONNECTED
        assert not meter.connected and meter.power_w == 0
        assert await client.output_state() is False
        assert await client.remote_reconnect() is ControlState.CONNECTED
        assert meter.connected and await client.output_state() is True


async def test_a_wrong_password_is_fatal() -> None:
    async with wrapper_server(EmulatedMeter()) as (url, _servers), open_link(url) as link:
        with pytest.raises(FatalAdapterError, match="wrong password"):
            async with open_client(link, ClientSettings(password=b"nope")):
                pass


async def test_long_answers_come_in_blocks() -> None:
    meter = EmulatedMeter()
    attributes = [(3, f"1-0:{c}.7.0", n) for c in (32, 52, 72, 31, 51, 71) for n in (2, 3)]
    async with (
        wrapper_server(meter, max_pdu=40) as (url, _servers),
        open_link(url) as link,
        open_client(link, ClientSettings()) as client,
    ):
        results = await client.get_many(attributes)
        assert len(results) == 12 and all(isinstance(r, Data) for r in results)
        clock = await client.get(8, "0-0:1.0.0")
        assert isinstance(clock.value, bytes) and len(clock.value) == 12


async def serve_hdlc(device: Link, responder: HdlcResponder, *, echo: bool) -> None:
    """A meter's HDLC port; with ``echo`` an optical head first repeats what it hears."""
    splitter = HanSplitter()
    while True:
        chunk = await device.read()
        if echo:
            await device.write(chunk)
        for item in splitter.feed(chunk):
            if isinstance(item, bytes):
                for reply in responder.receive(parse_frame(item)):
                    await device.write(reply)


@pytest.mark.parametrize("echo", [False, True])
async def test_hdlc_session_on_a_pty_with_segmentation(tmp_path: Path, echo: bool) -> None:
    meter = EmulatedMeter()
    server = CosemServer(cosem_objects(meter), password=PASSWORD)
    responder = HdlcResponder(server, address=1 << 7 | 17, address_size=2)
    responder.max_info = 24  # tiny frames: requests and answers both need segments
    settings = ClientSettings(
        transport="hdlc",
        password=PASSWORD,
        addresses=Addresses(client=1, server_logical=1, server_physical=17),
    )
    async with open_pty(str(tmp_path / "ttyDLMS")) as (device, path):
        task = asyncio.create_task(serve_hdlc(device, responder, echo=echo))
        try:
            async with open_link(path) as link, open_client(link, settings) as client:
                assert responder.connected
                values = await client.get_many(
                    [(3, "1-0:1.8.0", 2), (3, "1-0:2.8.0", 2), (3, "1-0:1.7.0", 2)] * 4
                )
                assert values[0] == Data(DOUBLE_LONG_UNSIGNED, int(meter.import_wh))
                assert len(values) == 12
                assert await client.remote_disconnect() is ControlState.DISCONNECTED
            assert not responder.connected  # DISC was sent and answered
        finally:
            task.cancel()


async def test_a_silent_meter_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transports, "RESPONSE_TIMEOUT_S", 0.3)
    async with open_pty(str(tmp_path / "tty")) as (_device, path), open_link(path) as link:
        transport_settings = ClientSettings(transport="hdlc")
        with pytest.raises(TimeoutError):
            async with open_client(link, transport_settings):
                pass


# ------------------------------------------------------------------ polling into the engine


@pytest.mark.parametrize("transport", ["wrapper", "hdlc"])
async def test_tcpip_module_polls_into_the_engine_and_survives_a_meter_restart(
    tmp_path: Path, transport: str
) -> None:
    meter = EmulatedMeter()
    links: list[Link] = []
    async with wrapper_server(meter, links=links, transport=transport) as (url, servers):
        port = url.rsplit(":", 1)[1]
        module = (
            '[[modules]]\ntype = "tcpip"\nname = "dlms"\nmeter = "main"\nhost = "127.0.0.1"\n'
            f'port = {port}\nprotocol = "dlms"\ninterval_s = 0.2\n[modules.dlms]\n'
            f'transport = "{transport}"\nobjects = ["8/0-0:1.0.0", "1-0:1.8.0", '
            '"1-0:1.7.0", "1-0:32.7.0", "1-0:31.7.0", "1-0:99.99.0", "70/0-0:96.3.10"]\n'
        )
        async with running(settings_for(tmp_path, module)) as gateway:
            health = gateway.health["dlms"]
            await until(lambda: health.frames_ok >= 2)
            energy = register(gateway, "1-0:1.8.0")
            assert energy is not None
            assert abs(energy - Decimal(meter.import_wh) / 1000) < Decimal("0.002")
            assert register(gateway, "1-0:1.7.0") == Decimal(round(meter.power_w))
            voltage = register(gateway, "1-0:32.7.0")
            assert voltage is not None and Decimal(220) < voltage < Decimal(240)
            assert register(gateway, "0-0:96.3.10") == 1  # connected
            assert "1-0:99.99.0" not in gateway.engines["main"].registers
            # The meter drops the connection: the module reconnects and goes on.
            await links[0].close()
            await until(lambda: len(servers) == 2, 15)
            frames = health.frames_ok
            await until(lambda: health.frames_ok >= frames + 2)
            assert health.restarts == 1


async def test_slow_polls_associate_afresh_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dlms_poll, "KEEP_ASSOCIATION_S", 0.1)
    meter = EmulatedMeter()
    server = CosemServer(cosem_objects(meter), password=None)
    requests: list[int] = []
    answer = server.handle

    def counting(apdu: bytes) -> bytes:
        requests.append(apdu[0])
        return answer(apdu)

    server.handle = counting  # type: ignore[method-assign]
    responder = HdlcResponder(server, address=1)
    module = (
        '[[modules]]\ntype = "rs485"\nname = "bus"\nmeter = "main"\n'
        f'port = "{tmp_path / "tty"}"\nprotocol = "dlms"\ninterval_s = 0.2\nrs485 = false\n'
    )
    async with open_pty(str(tmp_path / "tty")) as (device, _path):
        task = asyncio.create_task(serve_hdlc(device, responder, echo=False))
        try:
            async with running(settings_for(tmp_path, module)) as gateway:
                await until(lambda: gateway.health["bus"].frames_ok >= 3)
                assert gateway.health["bus"].restarts == 0
        finally:
            task.cancel()
    assert requests.count(0x60) >= 3  # an AARQ per poll
    assert requests.count(0x62) >= 2  # and a release after each


async def test_rs485_module_polls_over_hdlc_on_a_pty(tmp_path: Path) -> None:
    meter = EmulatedMeter()
    server = CosemServer(cosem_objects(meter), password=PASSWORD)
    responder = HdlcResponder(server, address=1)
    module = (
        '[[modules]]\ntype = "rs485"\nname = "bus"\nmeter = "main"\n'
        f'port = "{tmp_path / "ttyRS485"}"\nprotocol = "dlms"\ninterval_s = 0.2\nrs485 = false\n'
        '[modules.dlms]\nclient_address = 1\npassword = "12345678"\n'
    )
    async with open_pty(str(tmp_path / "ttyRS485")) as (device, _path):
        task = asyncio.create_task(serve_hdlc(device, responder, echo=False))
        try:
            async with running(settings_for(tmp_path, module)) as gateway:
                health = gateway.health["bus"]
                await until(lambda: health.frames_ok >= 2)
                assert register(gateway, "1-0:2.8.0") == Decimal(meter.export_wh) / 1000
                assert register(gateway, "1-0:31.7.0") is not None
                assert server.authenticated
        finally:
            task.cancel()


def test_hdlc_server_addresses() -> None:
    assert ClientSettings().addresses.hdlc_server == (1, 1)
    assert Addresses(server_physical=17).hdlc_server == (1 << 7 | 17, 2)


@pytest.mark.parametrize("ciphered", [False, True], ids=["lls", "hls-gmac"])
async def test_simulate_dlms_command_serves_the_wrapper(ciphered: bool) -> None:
    port = free_port()
    keys = ["--key", GUEK.hex(), "--auth-key", GAK.hex()] if ciphered else []
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY),
        "simulate",
        "dlms",
        "--tcp",
        str(port),
        "--password",
        "pw",
        *keys,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(wait_for_port, port)
        settings = ClientSettings(password=b"pw", addresses=Addresses(client=1))
        if ciphered:
            settings = ClientSettings(
                addresses=Addresses(client=1), key=GUEK, auth_key=GAK, authentication="hls-gmac"
            )
        async with (
            open_link(f"tcp://127.0.0.1:{port}") as link,
            open_client(link, settings) as client,
        ):
            assert (await client.get(3, "1-0:1.8.0")).tag == DOUBLE_LONG_UNSIGNED
            assert await client.remote_disconnect() is ControlState.DISCONNECTED
            assert await client.remote_reconnect() is ControlState.CONNECTED
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


def test_the_server_answers_garbage_with_an_exception_response() -> None:
    server = CosemServer(cosem_objects(EmulatedMeter()), password=None)
    assert server.handle(b"\xc0\x01")[0] == 0xD8  # before any association
    assert server.handle(encode_aarq())[0] == 0x61
    assert server.associated
    assert server.handle(b"\xc0\x01\xc1\x00")[0] == 0xD8  # a GET cut short
    assert server.handle(b"\xc0\x01\xc1\x00\x03\x01\x00\x01\x08\x00\xff\x02\x01\x00")[0] == 0xD8


async def test_the_meters_disconnector_is_the_breakers_actuator(tmp_path: Path) -> None:
    meter = EmulatedMeter()
    async with wrapper_server(meter) as (url, _servers):
        port = url.rsplit(":", 1)[1]
        module = (
            '[meters.breaker]\nenabled = true\nactuator = "dlms"\nremote_reconnect = "direct"\n'
            '[[modules]]\ntype = "tcpip"\nname = "dlms"\nmeter = "main"\nhost = "127.0.0.1"\n'
            f'port = {port}\nprotocol = "dlms"\ninterval_s = 0.2\n[modules.dlms]\n'
            f'client_address = 1\npassword = "{PASSWORD.decode()}"\n'
            'objects = ["1-0:1.8.0", "1-0:1.7.0"]\n'
        )
        async with running(settings_for(tmp_path, module)) as gateway:
            await until(lambda: gateway.health["dlms"].frames_ok >= 1)
            breaker = gateway.engines["main"].state.breaker
            await gateway.execute(Command("main", "disconnect", "c1"))
            await until(lambda: not meter.connected and breaker.actuator == "confirmed")
            assert breaker.state == "disconnected"
            await gateway.execute(Command("main", "reconnect", "c2"))
            await until(lambda: meter.connected and breaker.actuator == "confirmed")
            assert breaker.state == "connected"
            kinds = [event.kind for _, event in gateway.store.events("main")]
            assert kinds.count("breaker_confirmed") == 2


async def test_a_disconnect_the_meter_refuses_is_an_actuator_failure(tmp_path: Path) -> None:
    meter = EmulatedMeter()
    async with wrapper_server(meter) as (url, _servers):
        port = url.rsplit(":", 1)[1]
        module = (  # the public client may read, not switch
            '[meters.breaker]\nenabled = true\nactuator = "dlms"\n'
            '[[modules]]\ntype = "tcpip"\nname = "dlms"\nmeter = "main"\nhost = "127.0.0.1"\n'
            f'port = {port}\nprotocol = "dlms"\ninterval_s = 0.2\n[modules.dlms]\n'
            'objects = ["1-0:1.8.0"]\n'
        )
        async with running(settings_for(tmp_path, module)) as gateway:
            await until(lambda: gateway.health["dlms"].frames_ok >= 1)
            await gateway.execute(Command("main", "disconnect", "c1"))
            await until(
                lambda: any(
                    e.kind == "breaker_actuator_failed" for _, e in gateway.store.events("main")
                )
            )
            assert meter.connected


GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")


async def test_ciphered_association_gets_and_switches_with_glo_apdus() -> None:
    meter = EmulatedMeter()
    links: list[Link] = []
    settings = ClientSettings(
        password=PASSWORD, addresses=Addresses(client=1), key=GUEK, auth_key=GAK
    )
    async with (
        wrapper_server(meter, keys=(GUEK, GAK), links=links) as (url, servers),
        open_link(url) as link,
        open_client(link, settings) as client,
    ):
        association = client.association
        assert association is not None and association.ciphered
        assert association.system_title == servers[0].system_title
        assert association.max_pdu == 0x0400  # from the deciphered glo-initiate-response
        energy = await client.get(3, "1-0:1.8.0")
        assert energy == Data(DOUBLE_LONG_UNSIGNED, int(meter.import_wh))
        results = await client.get_many([(3, "1-0:1.8.0", 2), (1, "0-0:96.1.0", 2)])
        assert results == [energy, Data(0x0A, meter.serial)]
        assert await client.remote_disconnect() is ControlState.DISCONNECTED
        assert not meter.connected


async def test_ciphered_meter_refuses_plain_and_wrong_keys() -> None:
    meter = EmulatedMeter()
    async with wrapper_server(meter, keys=(GUEK, GAK)) as (url, _servers):
        async with open_link(url) as link:
            with pytest.raises(FatalAdapterError, match="application context not supported"):
                async with open_client(link, ClientSettings()):
                    pass
        async with open_link(url) as link:
            wrong = ClientSettings(key=bytes(16), auth_key=GAK)
            with pytest.raises(FatalAdapterError, match="refused the association"):
                async with open_client(link, wrong):
                    pass


async def test_a_key_for_a_meter_that_answers_in_the_clear_is_fatal() -> None:
    async with wrapper_server(EmulatedMeter()) as (url, _servers), open_link(url) as link:
        with pytest.raises(FatalAdapterError, match="without ciphering"):
            async with open_client(link, ClientSettings(key=GUEK, auth_key=GAK)):
                pass


def test_dlms_key_options_are_checked_and_read(tmp_path: Path) -> None:
    gak_file = tmp_path / "gak"
    gak_file.write_text(GAK.hex() + "\n")
    options = DlmsOptions(
        key=GUEK.hex(" "), auth_key_file=str(gak_file), system_title="4D54470000000002"
    )
    settings = dlms_poll.client_settings(options, "tcp://127.0.0.1:4059")
    assert (settings.key, settings.auth_key) == (GUEK, GAK)
    assert settings.system_title == bytes.fromhex("4D54470000000002")
    assert settings.authentication == "lls"
    assert dlms_poll.client_settings(DlmsOptions(), "tcp://127.0.0.1:4059").key is None
    for bad, message in (
        ({"key": "00" * 15}, "dlms.key: 30 characters"),
        ({"auth_key": GAK.hex()}, "needs the encryption key"),
        ({"key": GUEK.hex(), "key_file": "/x"}, "give key or key_file"),
        ({"system_title": "4D5447"}, "dlms.system_title: 16 hex digits"),
        ({"authentication": "hls-gmac", "key": GUEK.hex()}, "hls-gmac needs dlms.key and"),
    ):
        with pytest.raises(ValueError, match=message):
            DlmsOptions(**bad)  # type: ignore[arg-type]


def test_hls_gmac_answer_of_the_green_book_example() -> None:
    # Green Book example (also dlms-cosem's test_gmac): client title 4D4D4D0000000001, IC 1.
    reply = hls_gmac(
        bytes.fromhex("503677524A323146"),
        system_title=bytes.fromhex("4D4D4D0000000001"),
        invocation_counter=1,
        key=GUEK,
        auth_key=GAK,
    )
    assert reply == bytes.fromhex("10000000011A52FE7DD3E72748973C1E28")
    assert check_hls_gmac(
        reply,
        bytes.fromhex("503677524A323146"),
        system_title=bytes.fromhex("4D4D4D0000000001"),
        key=GUEK,
        auth_key=GAK,
    )


async def test_hls_gmac_association_authenticates_both_ways() -> None:
    meter = EmulatedMeter()
    settings = ClientSettings(
        addresses=Addresses(client=1), key=GUEK, auth_key=GAK, authentication="hls-gmac"
    )
    async with (
        wrapper_server(meter, keys=(GUEK, GAK)) as (url, servers),
        open_link(url) as link,
        open_client(link, settings) as client,
    ):
        assert servers[0].authenticated  # pass 3 checked by the meter
        # HLS is enough to switch the supply, as LLS is.
        assert await client.remote_disconnect() is ControlState.DISCONNECTED
        assert not meter.connected


async def test_hls_gmac_with_a_wrong_authentication_key_is_refused() -> None:
    async with wrapper_server(EmulatedMeter(), keys=(GUEK, GAK)) as (url, servers):
        async with open_link(url) as link:
            wrong = ClientSettings(key=GUEK, auth_key=bytes(16), authentication="hls-gmac")
            # The glo-initiate-request already fails its tag at the meter.
            with pytest.raises(FatalAdapterError, match="refused the association"):
                async with open_client(link, wrong):
                    pass
        assert not servers[0].authenticated


def test_the_meter_serves_nothing_before_a_correct_hls_reply() -> None:
    server = CosemServer(cosem_objects(EmulatedMeter()), password=PASSWORD, keys=(GUEK, GAK))
    client = GlobalCiphering(system_title=DEFAULT_CLIENT_TITLE, key=GUEK, auth_key=GAK)
    aarq = encode_aarq(
        password=b"C" * 16,
        calling_title=DEFAULT_CLIENT_TITLE,
        user_information=client.wrap(initiate_request()),
        mechanism=MECHANISM_HLS_GMAC,
    )
    association = decode_aare(server.handle(aarq))
    assert association.accepted and association.challenge is not None
    client.peer_title = association.system_title
    # Before pass 3, a GET is refused.
    refused = server.handle(client.wrap(encode_get_request(3, "1-0:1.8.0", 2)))
    assert refused[0] == 0xD8
    # A reply computed for another challenge does not authenticate.
    forged = hls_gmac(
        b"X" * 16, system_title=DEFAULT_CLIENT_TITLE, invocation_counter=9, key=GUEK, auth_key=GAK
    )
    action = encode_action_request(15, "0-0:40.0.0", 1, Data(0x09, forged))
    answer = decode_action_response(client.unwrap(server.handle(client.wrap(action))))
    assert answer.result == 250 and not server.authenticated
