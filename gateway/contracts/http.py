"""The LAN API's responses (``/api/v1``) and the messages of its live stream.

Field names are a public contract: the web page, scripts and Home Assistant read them. A change
here shows as a diff of ``tests/contracts/`` (see ``tests/test_contracts.py``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gateway.contracts.wire import BillingValue, Number, ReadingValue, Timestamp

__all__ = [
    "STREAM_MESSAGES",
    "AnalysisHead",
    "AnalysisResponse",
    "AnalysisRow",
    "ApiIndex",
    "BillingPeriod",
    "BillingResponse",
    "BreakerActuator",
    "BreakerControl",
    "BreakerResponse",
    "CommandListResponse",
    "CommandResponse",
    "DescribedRegister",
    "DisplayPushResponse",
    "DisplayResponse",
    "DisplayState",
    "ErrorDetail",
    "ErrorResponse",
    "EventEntry",
    "EventsPage",
    "HealthResponse",
    "HttpStatus",
    "InfoResponse",
    "LiveHealth",
    "LiveRegisters",
    "MeterBillingPeriod",
    "MeterDetail",
    "MeterDisplayState",
    "MeterList",
    "MeterProfileRow",
    "MeterSummary",
    "ModuleStatus",
    "OpenApiDocument",
    "OpenApiInfo",
    "OutputStatus",
    "PrepaymentStatus",
    "ProfileHead",
    "ProfileResponse",
    "ProfileRow",
    "Register",
    "RegisterResponse",
    "RegistersResponse",
    "SmartDisconnectStatus",
    "Snapshot",
    "StateRegisters",
    "StoreStatus",
    "ZeroconfStatus",
]


class _Contract(msgspec.Struct, frozen=True, kw_only=True):
    """A public payload: built once, encoded as it is."""


# shared ----------------------------------------------------------------------------------------


class Register(_Contract, frozen=True):
    """A register as measured: its value, unit, when it was last measured and last changed."""

    value: ReadingValue
    unit: str | None
    at: Timestamp
    changed_at: Timestamp


class DescribedRegister(Register, frozen=True):
    """A register with its OBIS name and label (None for a code the gateway does not know)."""

    name: str | None
    label: str | None


class EventEntry(_Contract, frozen=True):
    """An entry of the non-volatile event log."""

    id: int
    meter: str
    at: Timestamp
    kind: str
    detail: str
    data: dict[str, Any]


class ErrorDetail(_Contract, frozen=True, omit_defaults=True):
    """Why a request was refused; ``parameter`` names a bad query parameter or argument."""

    code: str
    message: str
    parameter: str | None = None


class ErrorResponse(_Contract, frozen=True):
    """Every refusal (4xx) and failure (5xx)."""

    error: ErrorDetail


# gateway ---------------------------------------------------------------------------------------


class ApiIndex(_Contract, frozen=True):
    """Where everything is."""

    version: str
    openapi: str
    info: str
    health: str
    meters: str
    events: str
    stream: str
    metrics: str


class OpenApiInfo(_Contract, frozen=True):
    """The document's title, version and description."""

    title: str
    version: str
    description: str


class OpenApiDocument(_Contract, frozen=True):
    """An OpenAPI 3.1 document (this API's own description)."""

    openapi: str
    info: OpenApiInfo
    paths: dict[str, dict[str, Any]]
    components: dict[str, Any]


class HttpStatus(_Contract, frozen=True):
    """Where the LAN server listens."""

    bind: str
    port: int | None


class ZeroconfStatus(_Contract, frozen=True, kw_only=True, omit_defaults=True):
    """Whether and as what a server is announced on the LAN (mDNS)."""

    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    service: str | None
    error: str | None


class InfoResponse(_Contract, frozen=True):
    """Gateway identity and what it serves."""

    name: str
    version: str
    api: str
    started_at: Timestamp
    uptime_s: float
    timezone: str
    meters: list[str]
    commands: list[str]
    commands_enabled: bool
    http: HttpStatus
    zeroconf: ZeroconfStatus


class StoreStatus(_Contract, frozen=True):
    """The SQLite store: where it is and whether it takes writes."""

    path: str
    writable: bool
    problem: str | None


class ModuleStatus(_Contract, frozen=True):
    """One module: its state, frames and errors."""

    name: str
    type: str
    state: str
    since: Timestamp
    communicating: bool
    frames_ok: int
    frames_failed: int
    last_frame_at: Timestamp | None
    last_error: str | None
    restarts: int
    detail: dict[str, Any]


class OutputStatus(_Contract, frozen=True, omit_defaults=True):
    """One output (MQTT, HTTP, a compatibility server): what it reports of itself."""

    connected: bool | msgspec.UnsetType = msgspec.UNSET
    port: int | msgspec.UnsetType | None = msgspec.UNSET
    live_clients: int | msgspec.UnsetType = msgspec.UNSET
    zeroconf: ZeroconfStatus | msgspec.UnsetType = msgspec.UNSET
    outbox_depth: int | msgspec.UnsetType = msgspec.UNSET
    outbox_bytes: int | msgspec.UnsetType = msgspec.UNSET
    outbox_dropped: int | msgspec.UnsetType = msgspec.UNSET


class HealthResponse(_Contract, frozen=True):
    """``error`` while the store cannot be written, ``degraded`` while a module is not
    communicating, else ``ok``."""

    status: Literal["ok", "degraded", "error"]
    store: StoreStatus
    now: Timestamp
    uptime_s: float
    loop_lag_s: float
    modules: list[ModuleStatus]
    outputs: dict[str, OutputStatus]


class EventsPage(_Contract, frozen=True):
    """A page of the event log; ask for the next with ``after_id = next_after_id``."""

    events: list[EventEntry]
    next_after_id: int | None


# meters ----------------------------------------------------------------------------------------


class MeterSummary(_Contract, frozen=True):
    """A configured meter; ``registers`` is how many it has now."""

    id: str
    name: str | None
    manufacturer: str | None
    model: str | None
    registers: int
    updated_at: Timestamp | None
    modules: list[str]
    profile_interval_s: int


class MeterList(_Contract, frozen=True):
    """Every configured meter."""

    meters: list[MeterSummary]


class MeterDetail(_Contract, frozen=True):
    """One meter with its registers by OBIS code."""

    id: str
    name: str | None
    manufacturer: str | None
    model: str | None
    registers: dict[str, DescribedRegister]
    updated_at: Timestamp | None
    modules: list[str]
    profile_interval_s: int


class RegistersResponse(_Contract, frozen=True):
    """A meter's registers by OBIS code."""

    meter: str
    registers: dict[str, DescribedRegister]


class RegisterResponse(_Contract, frozen=True):
    """One register of a meter."""

    meter: str
    obis: str
    value: ReadingValue
    unit: str | None
    at: Timestamp
    changed_at: Timestamp
    name: str | None
    label: str | None


class DisplayState(_Contract, frozen=True):
    """What the LCD shows now: the list, the position in it and the reading."""

    list: Literal["auto", "manual", "battery"]
    index: int
    length: int
    obis: str
    id: str
    value: ReadingValue | None
    unit: str | None
    label: str


class DisplayResponse(_Contract, frozen=True):
    """The display lists and timing and, when the engine models the display, its state."""

    meter: str
    source: Literal["engine", "default"]
    auto: list[str]
    manual: list[str]
    battery: list[str]
    scroll_s: float
    manual_timeout_s: float
    state: DisplayState | None
    labels: dict[str, str]


class DisplayPushResponse(_Contract, frozen=True):
    """The display after the push button was pressed."""

    meter: str
    state: DisplayState


class BreakerActuator(_Contract, frozen=True):
    """The module that switches the breaker and whether it confirmed the last switch."""

    module: str | None
    confirmation: str
    target: str | None
    pending_since: Timestamp | None
    confirm_timeout_s: float


class BreakerControl(_Contract, frozen=True):
    """Who may switch the breaker."""

    remote_disconnect: bool
    remote_reconnect: Literal["direct", "arm", "never"]
    button_disconnect: bool
    button_reconnect: bool


class SmartDisconnectStatus(_Contract, frozen=True):
    """Limits that open the breaker (commands may override them)."""

    enabled: bool
    power_w: float | None
    current_a: float | None
    duration_s: float
    on_loss_of_neutral: bool
    reconnect: Literal["auto", "button"]


class PrepaymentStatus(_Contract, frozen=True):
    """Credit and its rules; ``credit`` is a decimal string in ``unit``."""

    enabled: bool
    unit: str
    credit: str
    exhausted: bool
    emergency_in_use: bool
    deferred: bool
    friendly_now: bool
    last_sequence: int
    warning_levels: list[float]
    reconnect: Literal["auto", "button"]


class BreakerResponse(_Contract, frozen=True):
    """Breaker state, causes, actuator, control modes, credit and recent history."""

    meter: str
    safety: str
    enabled: bool
    state: str
    causes: list[str]
    actuator: BreakerActuator
    control: BreakerControl
    smart_disconnect: SmartDisconnectStatus
    prepayment: PrepaymentStatus
    history: list[EventEntry]


class ProfileRow(_Contract, frozen=True):
    """A load-profile interval [start, end): energy per OBIS code and its status flags."""

    start: Timestamp
    end: Timestamp
    values: dict[str, Number]
    flags: int
    status: list[str]


class ProfileHead(_Contract, frozen=True):
    """What a profile download covers (written before its rows)."""

    meter: str
    interval_s: int
    since: Timestamp
    until: Timestamp


class ProfileResponse(ProfileHead, frozen=True):
    """Load-profile intervals starting in [since, until)."""

    rows: list[ProfileRow]


class AnalysisRow(_Contract, frozen=True):
    """Means of the analysis logger's registers over [start, end)."""

    start: Timestamp
    end: Timestamp
    values: dict[str, float]


class AnalysisHead(_Contract, frozen=True):
    """What an analysis download covers (written before its rows)."""

    meter: str
    since: Timestamp
    until: Timestamp


class AnalysisResponse(AnalysisHead, frozen=True):
    """Analysis logger rows starting in [since, until)."""

    rows: list[AnalysisRow]


class BillingPeriod(_Contract, frozen=True):
    """Values frozen at a debiting stop."""

    number: int
    at: Timestamp
    estimated: bool
    values: dict[str, BillingValue]


class BillingResponse(_Contract, frozen=True):
    """Debiting periods, newest first; page with ``before = next_before``."""

    meter: str
    periods: list[BillingPeriod]
    next_before: int | None


class CommandListResponse(_Contract, frozen=True):
    """The commands the gateway can execute now, and whether the API takes them."""

    meter: str
    commands: list[str]
    enabled: bool


class CommandResponse(_Contract, frozen=True):
    """A command carried out (refusals are ErrorResponse); ``result`` is the command's own."""

    ok: bool
    id: str
    meter: str
    command: str
    result: Any


# the live stream (server-sent events) ----------------------------------------------------------


class Snapshot(_Contract, frozen=True):
    """``snapshot``: the first message of a stream."""

    gateway: str
    meters: dict[str, dict[str, DescribedRegister]]
    display: dict[str, DisplayState]


class LiveRegisters(_Contract, frozen=True):
    """``live``: what a sample changed, at once."""

    meter: str
    registers: dict[str, Register]


class StateRegisters(_Contract, frozen=True):
    """``state``: every register the outputs show, at most once per publish interval."""

    meter: str
    registers: dict[str, DescribedRegister]


class MeterProfileRow(ProfileRow, frozen=True):
    """``profile``: a closed load-profile interval of a meter."""

    meter: str


class MeterBillingPeriod(BillingPeriod, frozen=True):
    """``billing``: a debiting stop of a meter."""

    meter: str


class MeterDisplayState(DisplayState, frozen=True):
    """``display``: the modelled LCD changed (scrolled, pushed, a new value)."""

    meter: str


class LiveHealth(_Contract, frozen=True):
    """``health``: a module's state, every few seconds."""

    state: str
    communicating: bool
    frames_ok: int
    frames_failed: int
    last_error: str | None


# Each message of ``/api/v1/stream`` by its event name (``health`` maps module names to states).
STREAM_MESSAGES: dict[str, Any] = {
    "snapshot": Snapshot,
    "live": LiveRegisters,
    "state": StateRegisters,
    "event": EventEntry,
    "profile": MeterProfileRow,
    "billing": MeterBillingPeriod,
    "display": MeterDisplayState,
    "health": dict[str, LiveHealth],
}
