"""A Shelly Pro 3EM (or Shelly Pro EM) stand-in for one of the gateway's meters.

Plug-in batteries and energy managers that regulate to zero export read a Shelly energy meter
at the grid connection. This output answers the same Gen2 RPC calls with the meter's values:

- HTTP: ``GET /rpc/<Method>?id=0`` (the result alone), ``POST /rpc`` (a JSON-RPC frame in,
  a frame out), ``GET /shelly`` (the device info), as Shelly devices serve them;
- WebSocket JSON-RPC at ``/rpc``, which aioshelly (Home Assistant's Shelly integration) uses;
- UDP JSON-RPC on ``udp_ports`` (default 1010 and 2220), which Marstek batteries poll;
- mDNS: ``_shelly._tcp`` and ``_http._tcp`` with the Gen2 TXT keys (``gen``, ``app``,
  ``ver``, ``id``, ``fw_id``, ``arch``).

The Pro 3EM model has ``em:0``/``emdata:0`` (``EM.GetStatus``: per-phase and total current,
voltage, active and apparent power, power factor, frequency; ``EMData.GetStatus``: energies in
Wh); the Pro EM model has ``em1:0``/``em1:1`` and ``em1data:0``/``em1data:1`` with the whole
meter on channel 0. Active power is signed as Shelly signs it: negative while exporting.

Every call reads the view afresh, so values are as new as the meter's last sample (a DSMR 5
P1 port: every second). Calls that would change anything (``*.Set*``, ``*.Reset*``, reboots,
updates, scripts) are refused with an RPC error; this stand-in is read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import msgspec
from aiohttp import WSMsgType, web

from gateway.compat.serving import CompatServer, derived_mac
from gateway.config import ShellySection
from gateway.model import utc_now
from gateway.ratelog import RateLimitedLog
from gateway.view import MeterView

__all__ = ["MODELS", "UDP_MAX_B", "RpcError", "ShellyModel", "ShellyRpc", "ShellyServer"]

_LOGGER = logging.getLogger(__name__)

# A request datagram is well under 200 bytes; anything near this is not a Shelly call.
UDP_MAX_B = 1024
# A battery polls about once a second. Replies are larger than requests, so a forged flood
# must not turn this port into an amplifier: past this many replies a second, stay quiet.
UDP_REPLIES_PER_S = 50
# The firmware this stand-in answers as: a 1.4 release, which every client in the field knows.
FIRMWARE = "1.4.4"
FIRMWARE_ID = "20241011-114455/1.4.4-g6d2a586"
# Grid frequency when the meter does not measure it (Shelly always reports one).
NOMINAL_HZ = 50.0


@dataclass(frozen=True, slots=True)
class ShellyModel:
    """What tells one Shelly model from another on the wire."""

    key: str
    model: str
    app: str
    id_prefix: str
    profile: str | None


MODELS = {
    "pro3em": ShellyModel("pro3em", "SPEM-003CEBEU", "Pro3EM", "shellypro3em", "triphase"),
    "proem": ShellyModel("proem", "SPEM-002CEBEU50", "ProEM", "shellyproem50", None),
}

# Method names that change a real device; refused by name so the client learns why.
_WRITE_WORDS = (
    ".Set",
    ".Reset",
    ".Delete",
    ".Put",
    ".Create",
    ".Start",
    ".Stop",
    ".Trigger",
    "Reboot",
    "Update",
    "FactoryReset",
    "Toggle",
)


class RpcError(Exception):
    """A Shelly RPC error: ``code`` and ``message`` as the device sends them."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _r(value: float, digits: int) -> float:
    # Always a JSON number with a fraction: some battery firmware parses only those.
    return float(round(value, digits))


class ShellyRpc:
    """The RPC methods, without any transport: method + params in, result dict out."""

    def __init__(self, view: MeterView, model: ShellyModel, mac: str) -> None:
        self._live = view
        self.view = view  # during a call: a snapshot of the live view
        self.model = model
        self.mac = mac.upper()
        self.device_id = f"{model.id_prefix}-{mac.lower()}"
        self._started = time.monotonic()
        self._methods = {
            "Shelly.GetDeviceInfo": self.device_info,
            "Shelly.GetStatus": self.status,
            "Shelly.GetConfig": self.config,
            "Shelly.GetComponents": self.components,
            "Shelly.ListMethods": self.list_methods,
            "Sys.GetStatus": self.sys_status,
            "Sys.GetConfig": lambda _p: self.config(_p)["sys"],
        }
        if model.key == "pro3em":
            self._methods |= {
                "EM.GetStatus": lambda p: self._one(p, 1, lambda _i: self.em_status()),
                "EMData.GetStatus": lambda p: self._one(p, 1, lambda _i: self.emdata_status()),
                "EM.GetConfig": lambda p: self._one(p, 1, lambda _i: self._em_config()),
            }
        else:
            self._methods |= {
                "EM1.GetStatus": lambda p: self._one(p, 2, self.em1_status),
                "EM1Data.GetStatus": lambda p: self._one(p, 2, self.em1data_status),
                "EM1.GetConfig": lambda p: self._one(p, 2, self._em1_config),
            }

    def call(self, method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Carry out a read-only call or raise RpcError (codes as the device uses them)."""
        handler = self._methods.get(method)
        if handler is None:
            if any(word in method for word in _WRITE_WORDS):
                raise RpcError(-103, f"{method} refused: this Shelly stand-in is read-only")
            raise RpcError(404, f"No handler for {method}")
        self.view = self._live.snapshot()
        try:
            result: dict[str, Any] = handler(params or {})
        finally:
            self.view = self._live
        return result

    # methods -----------------------------------------------------------------------------------

    def device_info(self, _params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``Shelly.GetDeviceInfo`` (also ``GET /shelly``)."""
        info: dict[str, Any] = {
            "name": self.view.name,
            "id": self.device_id,
            "mac": self.mac,
            "slot": 0,
            "model": self.model.model,
            "gen": 2,
            "fw_id": FIRMWARE_ID,
            "ver": FIRMWARE,
            "app": self.model.app,
            "auth_en": False,
            "auth_domain": None,
        }
        if self.model.profile:
            info["profile"] = self.model.profile
        return info

    def em_status(self) -> dict[str, Any]:
        """``EM.GetStatus`` of the Pro 3EM: W, V, A per phase a/b/c and in total."""
        status: dict[str, Any] = {"id": 0}
        totals = {"current": 0.0, "act_power": 0.0, "aprt_power": 0.0}
        for letter, phase in zip("abc", self._phases(), strict=True):
            for key, value in phase.items():
                status[f"{letter}_{key}"] = value
            for key in totals:
                totals[key] += phase[key]
        net = self._net("1-0:1.7.0", "1-0:2.7.0")
        status |= {
            "n_current": None,
            "total_current": _r(totals["current"], 3),
            "total_act_power": _r(net if net is not None else totals["act_power"], 1),
            "total_aprt_power": _r(totals["aprt_power"], 1),
            "user_calibrated_phase": [],
        }
        return status

    def emdata_status(self) -> dict[str, Any]:
        """``EMData.GetStatus`` of the Pro 3EM: energies in Wh per phase and in total."""
        total_in = self._wh("1-0:1.8.0")
        total_out = self._wh("1-0:2.8.0")
        status: dict[str, Any] = {"id": 0}
        phase_in = [self._wh(f"1-0:{c}.8.0") for c in (21, 41, 61)]
        phase_out = [self._wh(f"1-0:{c}.8.0") for c in (22, 42, 62)]
        if not any(phase_in + phase_out):
            # A meter without phase registers: its whole count on phase a, so the sums agree.
            phase_in, phase_out = [total_in, 0.0, 0.0], [total_out, 0.0, 0.0]
        for letter, imported, exported in zip("abc", phase_in, phase_out, strict=True):
            status[f"{letter}_total_act_energy"] = _r(imported, 2)
            status[f"{letter}_total_act_ret_energy"] = _r(exported, 2)
        status["total_act"] = _r(total_in, 2)
        status["total_act_ret"] = _r(total_out, 2)
        return status

    def em1_status(self, channel: int) -> dict[str, Any]:
        """``EM1.GetStatus`` of the Pro EM: channel 0 is the whole meter, channel 1 idle."""
        phases = self._phases()
        net = self._net("1-0:1.7.0", "1-0:2.7.0")
        whole = channel == 0
        act = (net if net is not None else sum(p["act_power"] for p in phases)) if whole else 0.0
        return {
            "id": channel,
            "current": _r(sum(p["current"] for p in phases), 3) if whole else 0.0,
            "voltage": phases[0]["voltage"],
            "act_power": _r(act, 1),
            "aprt_power": _r(sum(p["aprt_power"] for p in phases), 1) if whole else 0.0,
            "pf": _r(self.view.number("1-0:13.7.0", None) or 0.0, 2) if whole else 0.0,
            "freq": phases[0]["freq"],
            "calibration": "factory",
        }

    def em1data_status(self, channel: int) -> dict[str, Any]:
        """``EM1Data.GetStatus`` of the Pro EM: energies in Wh."""
        whole = channel == 0
        return {
            "id": channel,
            "total_act_energy": _r(self._wh("1-0:1.8.0"), 2) if whole else 0.0,
            "total_act_ret_energy": _r(self._wh("1-0:2.8.0"), 2) if whole else 0.0,
        }

    def sys_status(self, _params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``Sys.GetStatus``: time and uptime; the rest as a device with nothing pending."""
        now = utc_now()
        return {
            "mac": self.mac,
            "restart_required": False,
            "time": now.strftime("%H:%M"),
            "unixtime": int(now.timestamp()),
            "uptime": int(time.monotonic() - self._started),
            "ram_size": 0,
            "ram_free": 0,
            "fs_size": 0,
            "fs_free": 0,
            "cfg_rev": 0,
            "kvs_rev": 0,
            "schedule_rev": 0,
            "webhook_rev": 0,
            "available_updates": {},
        }

    def status(self, _params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``Shelly.GetStatus``: every component's status."""
        status: dict[str, Any] = {
            "cloud": {"connected": False},
            "eth": {"ip": None},
            "mqtt": {"connected": False},
            "sys": self.sys_status(),
            "wifi": {"sta_ip": None, "status": "disconnected", "ssid": None, "rssi": 0},
            "ws": {"connected": False},
        }
        if self.model.key == "pro3em":
            status["em:0"] = self.em_status()
            status["emdata:0"] = self.emdata_status()
        else:
            for channel in (0, 1):
                status[f"em1:{channel}"] = self.em1_status(channel)
                status[f"em1data:{channel}"] = self.em1data_status(channel)
        return status

    def config(self, _params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``Shelly.GetConfig``: every component's settings (all off that this one lacks)."""
        device: dict[str, Any] = {
            "name": self.view.name,
            "mac": self.mac,
            "fw_id": FIRMWARE_ID,
            "discoverable": True,
        }
        if self.model.profile:
            device["profile"] = self.model.profile
        config: dict[str, Any] = {
            "cloud": {"enable": False, "server": None},
            "eth": {"enable": True, "ipv4mode": "dhcp"},
            "mqtt": {"enable": False, "server": None},
            "sys": {
                "device": device,
                "location": {"tz": None, "lat": None, "lon": None},
                "debug": {"websocket": {"enable": False}},
                "ui_data": {},
                "rpc_udp": {"dst_addr": None, "listen_port": None},
                "sntp": {"server": None},
                "cfg_rev": 0,
            },
            "wifi": {"sta": {"ssid": None, "enable": False}},
            "ws": {"enable": False, "server": None},
        }
        if self.model.key == "pro3em":
            config["em:0"] = self._em_config()
            config["emdata:0"] = {}
        else:
            for channel in (0, 1):
                config[f"em1:{channel}"] = self._em1_config(channel)
                config[f"em1data:{channel}"] = {}
        return config

    def components(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``Shelly.GetComponents``: no dynamic (virtual) components."""
        return {"components": [], "cfg_rev": 0, "offset": 0, "total": 0}

    def list_methods(self, _params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``Shelly.ListMethods``: what this stand-in answers."""
        return {"methods": sorted(self._methods)}

    # internals ---------------------------------------------------------------------------------

    def _one(self, params: Mapping[str, Any], count: int, handler: Any) -> dict[str, Any]:
        """Component calls take ``id``: 0 (or up to ``count - 1``); anything else is an error."""
        component = params.get("id", 0)
        if isinstance(component, str) and component.isdigit():
            component = int(component)
        if not isinstance(component, int) or isinstance(component, bool):
            raise RpcError(-103, "Invalid argument 'id': expected a number")
        if not 0 <= component < count:
            raise RpcError(-105, f"Argument 'id', value {component} not found!")
        result: dict[str, Any] = handler(component)
        return result

    def _em_config(self, _channel: int = 0) -> dict[str, Any]:
        return {
            "id": 0,
            "name": None,
            "blink_mode_selector": "active_energy",
            "phase_selector": "all",
            "monitor_phase_sequence": False,
            "ct_type": "120A",
        }

    def _em1_config(self, channel: int) -> dict[str, Any]:
        return {"id": channel, "name": None, "ct_type": "50A", "reverse": False}

    def _net(self, import_code: str, export_code: str) -> float | None:
        imported = self.view.number(import_code, "W")
        exported = self.view.number(export_code, "W")
        if imported is None and exported is None:
            return None
        return (imported or 0.0) - (exported or 0.0)

    def _wh(self, code: str) -> float:
        kwh = self.view.number(code, "kWh")
        return 0.0 if kwh is None else kwh * 1000.0

    def _phases(self) -> list[dict[str, float]]:
        """Per-phase current, voltage, active and apparent power, power factor, frequency."""
        frequency = self.view.number("1-0:14.7.0", "Hz") or NOMINAL_HZ
        phases: list[dict[str, float]] = []
        for power, voltage, current, factor in (
            (21, 32, 31, 33),
            (41, 52, 51, 53),
            (61, 72, 71, 73),
        ):
            volts = self.view.number(f"1-0:{voltage}.7.0", "V") or 0.0
            amps = self.view.number(f"1-0:{current}.7.0", "A") or 0.0
            act = self._net(f"1-0:{power}.7.0", f"1-0:{power + 1}.7.0")
            aprt = volts * amps
            pf = self.view.number(f"1-0:{factor}.7.0", None)
            if pf is None:
                pf = abs(act) / aprt if act is not None and aprt > 0 else 0.0
            phases.append(
                {
                    "current": _r(amps, 3),
                    "voltage": _r(volts, 1),
                    "act_power": _r(act or 0.0, 1),
                    "aprt_power": _r(max(aprt, abs(act or 0.0)), 1),
                    "pf": _r(min(pf, 1.0), 2),
                    "freq": _r(frequency, 1),
                }
            )
        if all(p["act_power"] == 0.0 for p in phases):
            # A meter without phase registers: its total on phase a, so the sums agree.
            net = self._net("1-0:1.7.0", "1-0:2.7.0")
            if net:
                phases[0]["act_power"] = _r(net, 1)
                phases[0]["aprt_power"] = max(phases[0]["aprt_power"], _r(abs(net), 1))
        return phases


class _Frame(msgspec.Struct, frozen=True):
    """A JSON-RPC request frame as Shelly clients send it (over WebSocket, POST and UDP)."""

    method: str
    id: int | str | None = None
    src: str | None = None
    params: dict[str, Any] | None = None


_decode_frame = msgspec.json.Decoder(_Frame)


class ShellyServer(CompatServer):
    """The Shelly stand-in as a gateway output: HTTP and WebSocket RPC, UDP RPC, mDNS."""

    name = "shelly"

    def __init__(
        self,
        view: MeterView,
        settings: ShellySection,
        *,
        gateway_name: str,
        announce_on: Sequence[str] | None,
    ) -> None:
        super().__init__(bind=settings.bind, port=settings.port, announce_on=announce_on)
        mac = settings.mac or derived_mac(gateway_name, view.id, "shelly")
        self.rpc = ShellyRpc(view, MODELS[settings.model], mac)
        self.udp_ports = settings.udp_ports
        self.udp_bound: list[int] = []
        self.udp_answered = 0
        self.udp_withheld = 0  # requests past UDP_REPLIES_PER_S, not answered
        self._bad = RateLimitedLog(_LOGGER)

    def services(self) -> tuple[str, Mapping[str, dict[str, str]]]:
        """The device id as the instance, on ``_shelly._tcp`` and ``_http._tcp``."""
        shelly_txt = {"gen": "2", "app": self.rpc.model.app, "ver": FIRMWARE}
        http_txt = {"gen": "2", "id": self.rpc.device_id, "arch": "esp32", "fw_id": FIRMWARE_ID}
        return self.rpc.device_id, {
            "_shelly._tcp.local.": shelly_txt,
            "_http._tcp.local.": http_txt,
        }

    def build_app(self) -> web.Application:
        """``/shelly``, ``/rpc/<Method>`` (GET, POST) and ``/rpc`` (POST frame, WebSocket)."""
        app = web.Application(client_max_size=16 * 1024)
        app.add_routes(
            [
                web.get("/shelly", self._shelly),
                web.get("/rpc", self._websocket),
                web.post("/rpc", self._post_frame),
                web.route("*", "/rpc/{method}", self._method),
            ]
        )
        return app

    async def serve_more(self) -> None:
        """The UDP RPC listeners, one per configured port, until cancelled."""
        loop = asyncio.get_running_loop()
        transports: list[asyncio.DatagramTransport] = []
        try:
            for port in self.udp_ports:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpRpc(self), local_addr=(self.bind, port)
                )
                transports.append(transport)
                bound = transport.get_extra_info("sockname")
                self.udp_bound.append(int(bound[1]))
                _LOGGER.info("shelly: answering UDP RPC on %s:%d", self.bind, bound[1])
            await asyncio.Event().wait()
        finally:
            for transport in transports:
                transport.close()
            self.udp_bound = []

    # HTTP --------------------------------------------------------------------------------------

    async def _shelly(self, request: web.Request) -> web.Response:
        return _json(self.rpc.device_info())

    async def _method(self, request: web.Request) -> web.Response:
        params: dict[str, Any] = {key: _query_value(v) for key, v in request.query.items()}
        if request.method == "POST" and request.can_read_body:
            try:
                body = msgspec.json.decode(await request.read())
            except msgspec.DecodeError:
                return _rpc_error_response(RpcError(-103, "the body is not JSON"))
            if isinstance(body, dict):
                params |= body
        elif request.method not in ("GET", "HEAD", "POST"):
            return _rpc_error_response(RpcError(-103, f"{request.method} is not an RPC verb"))
        try:
            return _json(self.rpc.call(request.match_info["method"], params))
        except RpcError as err:
            return _rpc_error_response(err)

    async def _post_frame(self, request: web.Request) -> web.Response:
        reply = self._answer(await request.read())
        if reply is None:
            return _rpc_error_response(
                RpcError(-103, 'the body is no JSON-RPC frame ({"id", "method", "params"})')
            )
        return _json(reply)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(heartbeat=None, max_msg_size=16 * 1024)
        if not socket.can_prepare(request).ok:
            return _rpc_error_response(RpcError(404, "GET /rpc needs a WebSocket upgrade"))
        await socket.prepare(request)
        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                continue
            reply = self._answer(message.data.encode())
            if reply is not None:
                await socket.send_str(msgspec.json.encode(reply).decode())
        return socket

    def _answer(self, raw: bytes) -> dict[str, Any] | None:
        """A JSON-RPC frame's reply frame; None for a frame that is no call (logged, rated)."""
        try:
            frame = _decode_frame.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            self._bad.warning("shelly: ignored a request that is no RPC frame: %s", err)
            return None
        reply: dict[str, Any] = {"id": frame.id, "src": self.rpc.device_id}
        if frame.src is not None:
            reply["dst"] = frame.src
        try:
            reply["result"] = self.rpc.call(frame.method, frame.params)
        except RpcError as err:
            reply["error"] = {"code": err.code, "message": err.message}
        return reply


class _UdpRpc(asyncio.DatagramProtocol):
    """One UDP port: each datagram is a JSON-RPC frame, answered to its sender."""

    def __init__(self, server: ShellyServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None
        self._window = 0.0  # the second being counted (monotonic)
        self._replies = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's transport; asyncio types the callback's argument more widely.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) > UDP_MAX_B or self._transport is None:
            return
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._replies = now, 0
        if self._replies >= UDP_REPLIES_PER_S:
            self._server.udp_withheld += 1
            return
        self._replies += 1
        reply = self._server._answer(data)
        if reply is not None:
            with contextlib.suppress(OSError):
                self._transport.sendto(msgspec.json.encode(reply), addr)
                self._server.udp_answered += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away; the next poll decides.
        _LOGGER.debug("shelly: UDP: %s", exc)


def _query_value(text: str) -> Any:
    """``?id=0`` -> 0, ``?x=true`` -> True, ``?s="a"`` -> "a"; anything else stays text."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


def _json(body: Mapping[str, Any]) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def _rpc_error_response(err: RpcError) -> web.Response:
    status = HTTPStatus.NOT_FOUND if err.code == HTTPStatus.NOT_FOUND else HTTPStatus.BAD_REQUEST
    return web.Response(
        body=msgspec.json.encode({"code": err.code, "message": err.message}),
        status=status,
        content_type="application/json",
    )
