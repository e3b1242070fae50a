"""A HomeWizard Wi-Fi P1 meter's local API, version 1, for one of the gateway's meters.

What HomeWizard clients read from a P1 meter (Home Assistant's HomeWizard integration through
python-homewizard-energy, evcc, battery controllers): ``GET /api`` says what the device is,
``GET /api/v1/data`` gives the meter's values. Field names and units are those of the
published v1 API: energies in kWh, powers in W (``active_power_w`` is import minus export, so
negative while exporting), voltages in V, currents in A. The API's own misspelling
``montly_power_peak_w`` is kept, since clients look for it by that name.

Fields the meter does not have are left out, as the device leaves out what the smart meter
does not send. Everything that would change the device (``PUT /api/v1/state``, ``/system``,
``/identify``) is refused with 405; this stand-in is read-only.

Announced as ``_hwenergy._tcp`` with the TXT keys the device uses (``api_enabled``, ``path``,
``serial``, ``product_type``, ``product_name``), which is how Home Assistant discovers it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus

import msgspec
from aiohttp import web

from gateway import __version__
from gateway.compat.serving import CompatServer, derived_mac
from gateway.config import HomeWizardSection
from gateway.view import MeterView

__all__ = ["SERVICE_TYPE", "HomeWizardData", "HomeWizardDevice", "HomeWizardServer", "data_of"]

SERVICE_TYPE = "_hwenergy._tcp.local."
API_PATH = "/api/v1"
PRODUCT_TYPE = "HWE-P1"
PRODUCT_NAME = "P1 meter"
# DSMR 5.0, which P1 meters report as 50: the version whose fields (per-phase values) we fill.
SMR_VERSION = 50


class HomeWizardDevice(msgspec.Struct, frozen=True):
    """``GET /api``."""

    product_type: str
    product_name: str
    serial: str
    firmware_version: str
    api_version: str = "v1"


class HomeWizardError(msgspec.Struct, frozen=True):
    """The v1 API's error body's inner object."""

    id: int
    description: str


class HomeWizardErrorBody(msgspec.Struct, frozen=True):
    """``{"error": {"id": ..., "description": ...}}``."""

    error: HomeWizardError


class HomeWizardData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``GET /api/v1/data`` of a P1 meter; a field the meter lacks is left out."""

    wifi_ssid: str | None = None
    wifi_strength: int | None = None
    smr_version: int | None = None
    meter_model: str | None = None
    unique_id: str | None = None
    active_tariff: int | None = None
    total_power_import_kwh: float | None = None
    total_power_import_t1_kwh: float | None = None
    total_power_import_t2_kwh: float | None = None
    total_power_import_t3_kwh: float | None = None
    total_power_import_t4_kwh: float | None = None
    total_power_export_kwh: float | None = None
    total_power_export_t1_kwh: float | None = None
    total_power_export_t2_kwh: float | None = None
    total_power_export_t3_kwh: float | None = None
    total_power_export_t4_kwh: float | None = None
    active_power_w: float | None = None
    active_power_l1_w: float | None = None
    active_power_l2_w: float | None = None
    active_power_l3_w: float | None = None
    active_voltage_l1_v: float | None = None
    active_voltage_l2_v: float | None = None
    active_voltage_l3_v: float | None = None
    active_current_l1_a: float | None = None
    active_current_l2_a: float | None = None
    active_current_l3_a: float | None = None
    active_frequency_hz: float | None = None
    montly_power_peak_w: float | None = None
    # Gas and water meters on the M-Bus of a P1 port; this gateway shows them as meters of
    # their own, so the list is always there and empty, as on a P1 meter without any.
    external: list[dict[str, object]]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _net(view: MeterView, import_code: str, export_code: str) -> float | None:
    """Import minus export in W; None when neither is known."""
    imported = view.number(import_code, "W")
    exported = view.number(export_code, "W")
    if imported is None and exported is None:
        return None
    return _round((imported or 0.0) - (exported or 0.0), 0)


def data_of(view: MeterView, *, model: str | None) -> HomeWizardData:
    """The data document for a meter's present values."""
    view = view.snapshot()
    serial = view.text("0-0:96.1.0") or view.id
    tariff = view.number("0-0:96.14.0", None)
    energy = {
        f"total_power_{direction}{suffix}_kwh": _round(view.number(f"1-0:{c}.8.{t}", "kWh"), 3)
        for direction, c in (("import", 1), ("export", 2))
        for t, suffix in ((0, ""), (1, "_t1"), (2, "_t2"), (3, "_t3"), (4, "_t4"))
    }
    phases: dict[str, float | None] = {}
    for phase, (power, voltage, current) in enumerate(
        ((21, 32, 31), (41, 52, 51), (61, 72, 71)), 1
    ):
        phases[f"active_power_l{phase}_w"] = _net(view, f"1-0:{power}.7.0", f"1-0:{power + 1}.7.0")
        phases[f"active_voltage_l{phase}_v"] = _round(view.number(f"1-0:{voltage}.7.0", "V"), 1)
        phases[f"active_current_l{phase}_a"] = _round(view.number(f"1-0:{current}.7.0", "A"), 3)
    fields: dict[str, object] = {
        "wifi_ssid": "meter-gateway",
        "wifi_strength": 100,
        "smr_version": SMR_VERSION,
        "meter_model": model or view.name,
        # A P1 meter sends its equipment id as hex-coded text; clients decode it back.
        "unique_id": serial.encode().hex().upper(),
        "active_tariff": int(tariff) if tariff is not None else None,
        "active_power_w": _net(view, "1-0:1.7.0", "1-0:2.7.0"),
        "active_frequency_hz": _round(view.number("1-0:14.7.0", "Hz"), 2),
        "montly_power_peak_w": _round(view.number("1-0:1.6.0", "W"), 0),
        **energy,
        **phases,
        "external": [],
    }
    return msgspec.convert(fields, HomeWizardData)


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HomeWizardServer(CompatServer):
    """The HomeWizard P1 local API (v1) as a gateway output."""

    name = "homewizard"

    def __init__(
        self,
        view: MeterView,
        settings: HomeWizardSection,
        *,
        gateway_name: str,
        model: str | None,
        announce_on: Sequence[str] | None,
    ) -> None:
        super().__init__(bind=settings.bind, port=settings.port, announce_on=announce_on)
        self.view = view
        self.model = model
        self.serial = (settings.serial or derived_mac(gateway_name, view.id, "homewizard")).lower()

    def device(self) -> HomeWizardDevice:
        """What ``GET /api`` answers."""
        return HomeWizardDevice(
            product_type=PRODUCT_TYPE,
            product_name=PRODUCT_NAME,
            serial=self.serial,
            firmware_version=__version__,
        )

    def services(self) -> tuple[str, Mapping[str, dict[str, str]]]:
        """``p1meter-<last 6 of the serial>`` as ``_hwenergy._tcp`` with the device's TXT keys."""
        txt = {
            "api_enabled": "1",
            "path": API_PATH,
            "serial": self.serial,
            "product_type": PRODUCT_TYPE,
            "product_name": PRODUCT_NAME,
        }
        return f"p1meter-{self.serial[-6:]}", {SERVICE_TYPE: txt}

    def build_app(self) -> web.Application:
        """``/api`` and ``/api/v1/data``; anything else is 404, any write 405."""
        app = web.Application(client_max_size=4096)
        app.add_routes(
            [
                web.get("/api", self._device),
                web.get(f"{API_PATH}/data", self._data),
                web.route("*", "/{tail:.*}", self._other),
            ]
        )
        return app

    async def _device(self, request: web.Request) -> web.Response:
        return _json(self.device())

    async def _data(self, request: web.Request) -> web.Response:
        return _json(data_of(self.view, model=self.model))

    async def _other(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            # The device's own answer to a write it does not allow; nothing here changes.
            return _error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                202,
                f"{request.method} {request.path}: this P1 meter stand-in is read-only",
            )
        return _error(HTTPStatus.NOT_FOUND, 201, f"{request.path}: no such endpoint")


def _json(body: msgspec.Struct) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def _error(status: HTTPStatus, code: int, description: str) -> web.Response:
    body = HomeWizardErrorBody(HomeWizardError(code, description))
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )
