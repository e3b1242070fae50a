"""TOML -> frozen, typed config.

Every section is a msgspec Struct that rejects unknown keys. Each module type owns its config
Struct (a subclass of ``ModuleConfig``, found through the registry), so a typo anywhere is caught
before any device is touched, with the file and the key path in the message.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from gateway import registry
from gateway.engine.settings import EngineSettings
from gateway.errors import ConfigError

__all__ = [
    "ClusterSection",
    "GatewaySection",
    "HomeWizardSection",
    "HttpSection",
    "MeterConfig",
    "ModuleConfig",
    "MqttSection",
    "Settings",
    "ShellySection",
    "TlsSection",
    "ZeroconfSection",
    "default",
    "load",
    "loads",
    "read_secret",
]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Common options: immutable, keyword-only, unknown keys are errors."""


class GatewaySection(_Section, frozen=True):
    """``[gateway]``: identity, storage and time."""

    name: str = "home"
    data_dir: str = "/var/lib/meter-gateway"
    timezone: str = "UTC"
    # Live values (state messages, SSE, the Z-Wave node) leave from memory at most this often
    # per meter; a meter sampling slower goes out at every sample.
    publish_interval_s: float = 1.0
    # Registers and engine state reach the SD card this often (and within a second of every
    # debiting stop, tariff or breaker switch, on SIGTERM/SIGHUP and before a module swap,
    # gateway/app.py GATHER_AT_ONCE_S). Every checkpoint
    # costs at least 12 KB of writes however little moved (its WAL frame spans two kernel pages,
    # the WAL's mtime an inode block: gateway/store.py), so its count per day is what wears the
    # card: at 900 s one meter wrote 1.2 MB a day, over the 1 MB goal (bench/sd_card.py);
    # 1800 s, two load-profile intervals, keeps it near 0.6 MB, and a power cut refills at most
    # two intervals. A kill -9 or power cut loses at most this window of what only the gateway
    # counts (README "Durability").
    checkpoint_interval_s: float = 1800.0
    # The old name of checkpoint_interval_s (before live values left from memory); when set it
    # wins, so existing config files keep their meaning.
    persist_interval_s: float | None = None
    shutdown_timeout_s: float = 10.0

    @property
    def checkpoint_s(self) -> float:
        """The checkpoint interval in force (``persist_interval_s`` if an old file sets it)."""
        if self.persist_interval_s is not None:
            return self.persist_interval_s
        return self.checkpoint_interval_s


class TlsSection(_Section, frozen=True):
    """``[mqtt.tls]``: broker TLS; verification stays on unless ``insecure`` is set."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


class MqttSection(_Section, frozen=True):
    """``[mqtt]``: the broker and what to publish."""

    enabled: bool = True
    host: str = "localhost"
    port: int = 1883
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive_s: int = 60
    tls: TlsSection | None = None
    base_topic: str = "meter-gateway"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    # "device": one retained config per meter (Home Assistant 2024.11+); "entity": one per value,
    # for older Home Assistant releases and other hubs' discovery readers (openHAB, ioBroker).
    discovery_mode: Literal["device", "entity"] = "device"
    # The oldest Home Assistant release that reads this broker ("YYYY.M"): discovery sends only
    # what that release accepts (reactive energy has a device class from 2025.6 on).
    ha_version: str = "2024.11"
    availability_timeout_s: float = 120.0
    per_value_topics: bool = False
    raw_frames: bool = False
    # A spilled 35-register state is ~420 bytes on disk: 256 MB hold 7 days of an outage with
    # one state per second per meter.
    outbox_max_mb: float = 256.0
    outbox_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    # Messages wait in memory for the broker's PUBACK; those waiting longer (the broker is away
    # or behind) go to the outbox on disk, in one batch per this interval. A kill -9 during an
    # outage loses at most this much of the newest messages; a restart loses no spilled one.
    outbox_spill_after_s: float = 30.0
    # Commands on <base>/<gateway>/<meter>/set/# must carry an HMAC-SHA256 with this shared
    # secret and a timestamp at most command_max_age_s old (gateway/signing.py); unset:
    # unsigned commands.
    command_secret_file: str | None = None
    command_max_age_s: float = 30.0
    # Without a secret, commands that change something (top-ups, the breaker, register rebases)
    # are refused on MQTT: anyone who can publish to the broker could send them. This opts in.
    unsigned_commands: bool = False


class HttpSection(_Section, frozen=True):
    """``[http]``: the JSON API and web page."""

    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8382
    token: str | None = None
    token_file: str | None = None
    # Open connections at most (page, API, event streams together); more are closed at once.
    max_connections: int = 128
    # A connection that has not sent a complete request for this long is closed.
    idle_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_connections <= 10_000:
            raise ValueError(f"`max_connections` must be 1..10000, got {self.max_connections}")
        if not 0 < self.idle_timeout_s <= 3600:
            raise ValueError("`idle_timeout_s` must be above 0 and at most 3600 s")


class ZeroconfSection(_Section, frozen=True):
    """``[zeroconf]``: mDNS announcement of the HTTP API."""

    enabled: bool = True
    interfaces: tuple[str, ...] = ()


class HomeWizardSection(_Section, frozen=True):
    """``[homewizard]``: a HomeWizard P1 meter's local API (v1) for one meter, read-only."""

    enabled: bool = False
    meter: str | None = None  # default: the first [[meters]]
    bind: str = "0.0.0.0"
    # Clients that find the device by mDNS (Home Assistant, evcc) always connect to port 80.
    port: int = 80
    # The device's serial is its MAC address (12 hex digits); default: derived from the names.
    serial: str | None = None
    zeroconf: bool = True  # announce _hwenergy._tcp (on [zeroconf].interfaces)


class ShellySection(_Section, frozen=True):
    """``[shelly]``: a Shelly Pro 3EM (or Pro EM) stand-in for one meter, read-only."""

    enabled: bool = False
    meter: str | None = None  # default: the first [[meters]]
    model: Literal["pro3em", "proem"] = "pro3em"
    bind: str = "0.0.0.0"
    port: int = 80  # HTTP RPC (/rpc/<Method>, /shelly) and the WebSocket RPC at /rpc
    # Batteries poll over UDP: 1010 (Marstek B2500 up to firmware 224, Venus, Jupiter) and
    # 2220 (B2500 firmware 226 and later); an empty list turns UDP off.
    udp_ports: tuple[int, ...] = (1010, 2220)
    mac: str | None = None  # 12 hex digits; default: derived from the names
    zeroconf: bool = True  # announce _shelly._tcp and _http._tcp (on [zeroconf].interfaces)


# Meters are spread over engine gateways by the first byte of the SHA-256 of their id.
HASH_BUCKETS = 256


class ClusterSection(_Section, frozen=True):
    """``[cluster]``: this gateway's part when several share one broker (README "Many
    receivers, many meters"). Decode workers and engine feeds are modules (``decode_worker``,
    ``meter_feed``); these are the roles that belong to the whole gateway."""

    # Receiver role: every frame a module receives and can frame goes to
    # <base>/raw/<protocol>/<gateway>/<module> (QoS 1, through the outbox like states).
    receiver: bool = False
    # Engine role by hash: only the [[meters]] whose id falls into buckets [low, high) of
    # HASH_BUCKETS run here; the others are left out at load, so every engine gateway of a
    # group can read one shared [[meters]] list. Unset: every [[meters]] entry runs here.
    meter_hash_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.meter_hash_range is not None:
            low, high = self.meter_hash_range
            if not 0 <= low < high <= HASH_BUCKETS:
                raise ValueError(
                    f"`meter_hash_range` must be [low, high) with 0 <= low < high <= "
                    f"{HASH_BUCKETS}, got [{low}, {high}]"
                )

    def owns(self, meter_id: str) -> bool:
        """Whether this gateway runs the engine of ``meter_id``."""
        if self.meter_hash_range is None:
            return True
        low, high = self.meter_hash_range
        return low <= meter_bucket(meter_id) < high


def meter_bucket(meter_id: str) -> int:
    """The hash bucket of a meter id (stable across machines and Python versions)."""
    return hashlib.sha256(meter_id.encode()).digest()[0]


class MeterConfig(EngineSettings, frozen=True, kw_only=True):
    """``[[meters]]``: one modelled meter; the engine's settings ([meters.tariff], ...) too."""

    id: str
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None


class ModuleConfig(_Section, frozen=True):
    """Keys every ``[[modules]]`` entry has; each module type extends this Struct."""

    type: str
    name: str
    meter: str | None = None
    enabled: bool = True

    def meters_fed(self) -> tuple[str, ...]:
        """The meters this module's samples go to: its ``meter`` key (a module type that feeds
        several meters from one link, M-Bus or wM-Bus, adds them here)."""
        return (self.meter,) if self.meter else ()


class Settings(_Section, frozen=True):
    """The whole config file."""

    gateway: GatewaySection = GatewaySection()
    mqtt: MqttSection = MqttSection()
    http: HttpSection = HttpSection()
    zeroconf: ZeroconfSection = ZeroconfSection()
    homewizard: HomeWizardSection = HomeWizardSection()
    shelly: ShellySection = ShellySection()
    cluster: ClusterSection = ClusterSection()
    meters: tuple[MeterConfig, ...] = ()
    modules: tuple[ModuleConfig, ...] = ()
    source: str = "<embedded>"

    def meter(self, meter_id: str) -> MeterConfig:
        """The meter with this id."""
        for meter in self.meters:
            if meter.id == meter_id:
                return meter
        raise KeyError(meter_id)

    @property
    def data_path(self) -> Path:
        """Where the store and other state live."""
        return Path(self.gateway.data_dir)

    @property
    def zone(self) -> ZoneInfo:
        """The meter's local time zone."""
        return ZoneInfo(self.gateway.timezone)


_T = TypeVar("_T")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PATH_IN_ERROR = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def load(path: Path) -> Settings:
    """Read and validate a config file."""
    try:
        text = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", file=str(path)) from err
    return loads(text, source=str(path))


def default() -> Settings:
    """The embedded default: one simulated 382L, SQLite under ./var, HTTP on localhost."""
    text = resources.files("gateway").joinpath("default.toml").read_bytes()
    return loads(text, source="<embedded default>")


def loads(text: bytes | str, *, source: str = "<string>") -> Settings:
    """Validate TOML text; ``source`` names the file in error messages."""
    try:
        raw_text = text.decode("utf-8") if isinstance(text, bytes) else text
        document = tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", file=source) from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text: {err}", file=source) from err
    raw_modules = document.pop("modules", [])
    if not isinstance(raw_modules, list):
        raise ConfigError("must be an array of tables ([[modules]])", path="modules", file=source)
    settings = _convert(document, Settings, "", source)
    modules = tuple(
        _module(raw, f"modules[{index}]", source) for index, raw in enumerate(raw_modules)
    )
    owned = tuple(meter for meter in settings.meters if settings.cluster.owns(meter.id))
    settings = msgspec.structs.replace(settings, meters=owned, modules=modules, source=source)
    _check(settings)
    return settings


def read_secret(path: str, *, what: str) -> str:
    """A secret kept in its own file (one line; surrounding whitespace ignored)."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"cannot read {what} from {path}: {err.strerror}", path=what) from err


def _module(raw: Any, path: str, source: str) -> ModuleConfig:
    if not isinstance(raw, dict):
        raise ConfigError("must be a table", path=path, file=source)
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ConfigError("missing required key `type`", path=f"{path}.type", file=source)
    try:
        config_type = registry.adapter_class(kind).Config
    except ConfigError as err:
        raise ConfigError(str(err), path=f"{path}.type", file=source) from None
    config: ModuleConfig = _convert(raw, config_type, path, source)
    return config


def _convert(raw: Any, target: type[_T], prefix: str, source: str) -> _T:
    try:
        return msgspec.convert(raw, target, strict=True)
    except msgspec.ValidationError as err:
        message = str(err)
        match = _PATH_IN_ERROR.search(message)
        inner = match["path"].lstrip(".") if match else ""
        path = ".".join(part for part in (prefix, inner) if part).replace(".[", "[")
        reason = _PATH_IN_ERROR.sub("", message) if match else message
        raise ConfigError(reason, path=path or None, file=source) from None


def _check_name(name: str, seen: set[str], what: str, path: str, source: str) -> None:
    """A well-formed name not in ``seen`` (then added to it), else ConfigError at ``path``."""
    if not _NAME.match(name):
        raise ConfigError("use letters, digits, _ and - only", path=path, file=source)
    if name in seen:
        raise ConfigError(f"duplicate {what} {name!r}", path=path, file=source)
    seen.add(name)


def _check(settings: Settings) -> None:  # noqa: PLR0912 - the cross-field rules, one after another
    """Cross-field rules msgspec cannot express."""
    source = settings.source
    if not _NAME.match(settings.gateway.name):
        raise ConfigError("use letters, digits, _ and - only", path="gateway.name", file=source)
    if settings.gateway.name in ("raw", "samples"):
        # <base>/raw/... and <base>/samples/... are the group's shared topics.
        raise ConfigError(
            f"{settings.gateway.name!r} names the MQTT topics receivers and decode workers share;"
            " choose another gateway name",
            path="gateway.name",
            file=source,
        )
    if settings.cluster.receiver and not settings.mqtt.enabled:
        raise ConfigError(
            "a receiver publishes its frames over MQTT: set [mqtt] enabled = true",
            path="cluster.receiver",
            file=source,
        )
    try:
        ZoneInfo(settings.gateway.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {settings.gateway.timezone!r}", path="gateway.timezone", file=source
        ) from None
    section = settings.gateway
    for key, number in (
        ("publish_interval_s", section.publish_interval_s),
        ("checkpoint_interval_s", section.checkpoint_interval_s),
        ("persist_interval_s", section.persist_interval_s),
        ("shutdown_timeout_s", section.shutdown_timeout_s),
    ):
        if number is not None and not number > 0:
            raise ConfigError("must be greater than 0", path=f"gateway.{key}", file=source)
    if not re.fullmatch(r"20\d\d\.(1[0-2]|[1-9])(\.\d+)?", settings.mqtt.ha_version):
        raise ConfigError(
            'a Home Assistant release such as "2025.6"', path="mqtt.ha_version", file=source
        )
    # A meter's MQTT topics sit beside the gateway's own under <base>/<gateway>/: these ids
    # would be read as the gateway's status, commands, replies or raw frames.
    reserved = {"set", "status", "reply", "raw", settings.gateway.name}
    meter_ids: set[str] = set()
    for index, meter in enumerate(settings.meters):
        if meter.id in reserved:
            raise ConfigError(
                f"{meter.id!r} names the gateway's own MQTT topics; choose another meter id",
                path=f"meters[{index}].id",
                file=source,
            )
        _check_name(meter.id, meter_ids, "meter id", f"meters[{index}].id", source)
    names: set[str] = set()
    for index, module in enumerate(settings.modules):
        _check_name(module.name, names, "module name", f"modules[{index}].name", source)
        for meter_id in module.meters_fed():
            if meter_id not in meter_ids:
                raise ConfigError(
                    f"meter {meter_id!r} is not defined in [[meters]]",
                    path=f"modules[{index}].meter",
                    file=source,
                )
    for key, value in (
        ("mqtt.password_file", settings.mqtt.password_file),
        ("http.token_file", settings.http.token_file),
        ("mqtt.command_secret_file", settings.mqtt.command_secret_file),
    ):
        if value is not None and not Path(value).is_file():
            raise ConfigError(f"no such file: {value}", path=key, file=source)
    _check_mqtt(settings)
    _check_compat(settings, meter_ids)


_HEX12 = re.compile(r"^[0-9A-Fa-f]{12}$")


def _check_compat(settings: Settings, meter_ids: set[str]) -> None:
    """``[homewizard]`` and ``[shelly]``: a defined meter, usable ports, no two on one port."""
    source = settings.source
    listening: dict[tuple[str, int], str] = {}
    if settings.http.enabled:
        listening[(settings.http.bind, settings.http.port)] = "http"
    for name, section, hex_key in (
        ("homewizard", settings.homewizard, "serial"),
        ("shelly", settings.shelly, "mac"),
    ):
        if not section.enabled:
            continue
        if section.meter is not None and section.meter not in meter_ids:
            raise ConfigError(
                f"meter {section.meter!r} is not defined in [[meters]]",
                path=f"{name}.meter",
                file=source,
            )
        if section.meter is None and not meter_ids:
            raise ConfigError("needs a [[meters]] entry to show", path=name, file=source)
        ports = [("port", section.port)]
        if isinstance(section, ShellySection):
            ports += [(f"udp_ports[{i}]", p) for i, p in enumerate(section.udp_ports)]
        for key, port in ports:
            if not 0 <= port <= 65535:
                raise ConfigError("must be 0..65535", path=f"{name}.{key}", file=source)
        identity = getattr(section, hex_key)
        if identity is not None and not _HEX12.match(identity):
            raise ConfigError(
                "must be 12 hex digits (a MAC address without separators)",
                path=f"{name}.{hex_key}",
                file=source,
            )
        for (bind, port), owner in listening.items():
            # A wildcard address takes the port on every address, so it clashes with any.
            wildcard = {bind, section.bind} & {"", "0.0.0.0", "::"}
            if section.port and port == section.port and (bind == section.bind or wildcard):
                raise ConfigError(
                    f"{section.bind}:{section.port} clashes with [{owner}] on {bind}:{port};"
                    " choose another port or bind address",
                    path=f"{name}.port",
                    file=source,
                )
        listening[(section.bind, section.port)] = name


def _check_mqtt(settings: Settings) -> None:
    """``[mqtt]`` rules: topics MQTT accepts, one password source, TLS files that exist."""
    mqtt, source = settings.mqtt, settings.source
    for key, topic in (
        ("base_topic", mqtt.base_topic),
        ("discovery_prefix", mqtt.discovery_prefix),
    ):
        if not topic or "+" in topic or "#" in topic or "" in topic.split("/"):
            raise ConfigError(
                f"{topic!r} is not a usable topic prefix (no wildcards, no empty levels)",
                path=f"mqtt.{key}",
                file=source,
            )
    if mqtt.password is not None and mqtt.password_file is not None:
        raise ConfigError("set password or password_file, not both", path="mqtt", file=source)
    if (mqtt.password is not None or mqtt.password_file is not None) and not mqtt.username:
        raise ConfigError("a password needs a username", path="mqtt.username", file=source)
    for key, integer, low, high in (
        ("port", mqtt.port, 1, 65535),
        ("keepalive_s", mqtt.keepalive_s, 1, 65535),
    ):
        if not low <= integer <= high:
            raise ConfigError(f"must be {low}..{high}", path=f"mqtt.{key}", file=source)
    for key, number in (
        ("outbox_max_mb", mqtt.outbox_max_mb),
        ("outbox_spill_after_s", mqtt.outbox_spill_after_s),
        ("availability_timeout_s", mqtt.availability_timeout_s),
        ("command_max_age_s", mqtt.command_max_age_s),
    ):
        if not number > 0:
            raise ConfigError("must be greater than 0", path=f"mqtt.{key}", file=source)
    tls = mqtt.tls
    if tls is None:
        return
    if tls.key_file and not tls.cert_file:
        raise ConfigError("key_file needs cert_file", path="mqtt.tls.cert_file", file=source)
    for key, file_name in (
        ("ca_file", tls.ca_file),
        ("cert_file", tls.cert_file),
        ("key_file", tls.key_file),
    ):
        if file_name is not None and not Path(file_name).is_file():
            raise ConfigError(f"no such file: {file_name}", path=f"mqtt.tls.{key}", file=source)
