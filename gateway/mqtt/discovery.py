"""Home Assistant MQTT discovery: one device per meter, behind one device for the gateway.

Device-based discovery (``<prefix>/device/<object_id>/config``, Home Assistant 2024.11+) rather
than one config per entity: a meter is one retained message instead of ~30, the device, origin
and availability are written once, and removing a meter is one empty retained payload. Older
Home Assistant versions ignore it; the JSON ``state`` topic still serves them by hand.

Every component's ``unique_id`` is ``<gateway>_<meter>_<quantity name>``: stable across restarts,
config edits and OBIS spellings, so renames and unit changes made in Home Assistant survive.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from gateway import __version__, obis
from gateway.config import MeterConfig
from gateway.engine import Register
from gateway.mqtt.payloads import Topics, reading_key, safe_id

__all__ = [
    "Discovery",
    "gateway_object_id",
    "meter_object_id",
]

_LOGGER = logging.getLogger(__name__)

ORIGIN = {"name": "meter-gateway", "sw_version": __version__}

# Home Assistant rejects a sensor whose unit does not belong to its device class (and spells
# units exactly: kWh, not KWh). Units outside this table lose the class, not the value.
_UNITS: dict[str, frozenset[str | None]] = {
    "energy": frozenset({"Wh", "kWh", "MWh", "GWh", "TWh", "mWh", "J", "kJ", "MJ", "GJ"}),
    "reactive_energy": frozenset({"varh", "kvarh"}),
    "power": frozenset({"mW", "W", "kW", "MW", "GW", "TW"}),
    "reactive_power": frozenset({"mvar", "var", "kvar"}),
    "apparent_power": frozenset({"mVA", "VA", "kVA"}),
    "voltage": frozenset({"µV", "mV", "V", "kV", "MV"}),
    "current": frozenset({"mA", "A"}),
    "frequency": frozenset({"Hz", "kHz", "MHz", "GHz"}),
    "power_factor": frozenset({None, "%"}),
    "duration": frozenset({"d", "h", "min", "s", "ms"}),
    "gas": frozenset({"m³", "ft³", "CCF", "L"}),
    "water": frozenset({"m³", "ft³", "CCF", "L", "gal"}),
    "temperature": frozenset({"°C", "°F", "K"}),
    "timestamp": frozenset({None}),
    "enum": frozenset({None}),
}
# Digits worth showing: the 382L resolves 1 Wh; grid voltage to 0.1 V, current to 10 mA.
_PRECISION: dict[str | None, int] = {
    "kWh": 3,
    "kvarh": 3,
    "Wh": 0,
    "varh": 0,
    "W": 0,
    "var": 0,
    "VA": 0,
    "kW": 3,
    "V": 1,
    "A": 2,
    "Hz": 2,
}
_DIAGNOSTIC = frozenset({"serial_number", "meter_time", "hour_counter", "quadrant"})
# Device classes newer than Home Assistant 2024.11, with the release that brought them: an older
# release rejects the whole entity, so it gets the unit and state class without the class.
_DEVICE_CLASS_SINCE: dict[str, tuple[int, int]] = {"reactive_energy": (2025, 6)}
# States the engine names itself (no OBIS code): what Home Assistant shows, and their options.
_STATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "quadrant": ("Quadrant", ("1", "2", "3", "4")),
    "breaker_state": ("Breaker", ("connected", "disconnected", "ready_for_reconnection")),
}
# The breaker's remote controls, as Home Assistant buttons (command, name, icon).
_BREAKER_BUTTONS = (
    ("disconnect", "Disconnect breaker", "mdi:power-plug-off"),
    ("reconnect", "Reconnect breaker", "mdi:power-plug"),
)


def release(text: str) -> tuple[int, int]:
    """``"2025.6"`` (or ``"2025.6.1"``) as (2025, 6)."""
    year, month = text.split(".")[:2]
    return int(year), int(month)


def label_of(key: str) -> str:
    """A person's name for a register the OBIS table does not know: words, not identifiers."""
    return key.replace("_", " ").replace(":", " ").strip().capitalize()


# OBIS 0-0:96.14.0 counts tariffs from 1; the 382L has four.
TARIFF_OPTIONS = ("1", "2", "3", "4")


def gateway_object_id(gateway_name: str) -> str:
    """The gateway's Home Assistant device id (also its discovery object id)."""
    return f"meter-gateway_{gateway_name}"


def meter_object_id(gateway_name: str, meter_id: str) -> str:
    """A meter's Home Assistant device id."""
    return f"meter-gateway_{gateway_name}_{meter_id}"


class Discovery:
    """Builds the retained discovery configs for one gateway."""

    def __init__(
        self,
        gateway_name: str,
        topics: Topics,
        *,
        ha_version: str = "2024.11",
        unsigned_commands: bool = False,
    ) -> None:
        self.gateway_name = gateway_name
        self.ha_release = release(ha_version)
        # Home Assistant cannot sign commands: it gets controls only where unsigned state-
        # changing commands are allowed, by the same rule the command topics follow.
        self.controls = unsigned_commands
        self.topics = topics
        self._warned: set[tuple[str, str | None]] = set()

    def gateway_config(self) -> tuple[str, dict[str, Any]]:
        """The gateway device: connectivity, outbox health and a resend-discovery button."""
        object_id = gateway_object_id(self.gateway_name)
        detail = self.topics.status_detail
        components: dict[str, dict[str, Any]] = {
            "status": {
                "platform": "binary_sensor",
                "unique_id": f"{object_id}_status",
                "name": "Status",
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "state_topic": self.topics.status,
                "payload_on": "online",
                "payload_off": "offline",
            },
            "outbox_messages": {
                "platform": "sensor",
                "unique_id": f"{object_id}_outbox_messages",
                "name": "MQTT outbox",
                "icon": "mdi:tray-full",
                "entity_category": "diagnostic",
                "state_topic": detail,
                "value_template": "{{ value_json.outbox.messages }}",
                "unit_of_measurement": "messages",
                "state_class": "measurement",
            },
            "outbox_dropped": {
                "platform": "sensor",
                "unique_id": f"{object_id}_outbox_dropped",
                "name": "MQTT messages dropped",
                "icon": "mdi:delete-alert",
                "entity_category": "diagnostic",
                "state_topic": detail,
                "value_template": "{{ value_json.outbox.dropped }}",
                "unit_of_measurement": "messages",
                "state_class": "total_increasing",
            },
            "resend_discovery": {
                "platform": "button",
                "unique_id": f"{object_id}_resend_discovery",
                "name": "Resend discovery",
                "entity_category": "config",
                "command_topic": self.topics.command(self.gateway_name, "resend_discovery"),
            },
        }
        payload = {
            "device": {
                "identifiers": [object_id],
                "name": f"meter-gateway {self.gateway_name}",
                "manufacturer": "meter-gateway",
                "model": "Meter gateway",
                "sw_version": __version__,
            },
            "origin": ORIGIN,
            "qos": 1,
            "components": components,
        }
        # The connectivity sensor reads the status topic itself and must be able to show "off";
        # the gateway's other entities are unavailable while it is offline.
        for component_id, component in components.items():
            if component_id != "status":
                component["availability_topic"] = self.topics.status
        return self.topics.device_config(object_id), payload

    def meter_config(
        self, meter: MeterConfig, registers: Mapping[str, Register]
    ) -> tuple[str, dict[str, Any]]:
        """A meter's device with one entity per register it actually has."""
        object_id = meter_object_id(self.gateway_name, meter.id)
        components: dict[str, dict[str, Any]] = {}
        for code in sorted(registers):
            components.update(self._components(object_id, code, registers[code]))
        if self.controls and "breaker_state" in registers:
            for command, name, icon in _BREAKER_BUTTONS:
                components[f"breaker_{command}"] = {
                    "platform": "button",
                    "unique_id": f"{object_id}_breaker_{command}",
                    "name": name,
                    "icon": icon,
                    "command_topic": self.topics.command(meter.id, command),
                    "payload_press": "PRESS",
                }
        device: dict[str, Any] = {
            "identifiers": [object_id],
            "name": meter.name or f"Meter {meter.id}",
            "via_device": gateway_object_id(self.gateway_name),
        }
        if meter.manufacturer:
            device["manufacturer"] = meter.manufacturer
        if meter.model:
            device["model"] = meter.model
        serial = registers.get("0-0:96.1.0")
        if serial is not None:
            device["serial_number"] = str(serial.value)
        payload = {
            "device": device,
            "origin": ORIGIN,
            "availability": [
                {"topic": self.topics.status},
                {"topic": self.topics.availability(meter.id)},
            ],
            "availability_mode": "all",
            "state_topic": self.topics.state(meter.id),
            "qos": 1,
            "components": components,
        }
        return self.topics.device_config(object_id), payload

    def per_entity(self, topic: str, document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """A device document as one config per entity (``<prefix>/<platform>/<node>/<id>/config``).

        Each entity carries what the device document says once: the device, origin,
        availability, state topic and QoS, so readers that know only per-entity discovery
        (Home Assistant before 2024.11, other hubs) see the same entities with the same ids."""
        node = topic.split("/")[-2]
        shared = {key: value for key, value in document.items() if key != "components"}
        configs = []
        for component_id, component in document["components"].items():
            entity = {**shared, **component}
            platform = entity.pop("platform")
            configs.append(
                (f"{self.topics.discovery_prefix}/{platform}/{node}/{component_id}/config", entity)
            )
        return configs

    def config_topics(self, meter_ids: Iterable[str]) -> set[str]:
        """The discovery topics this gateway owns for these meters (plus its own)."""
        topics = {self.topics.device_config(gateway_object_id(self.gateway_name))}
        topics.update(
            self.topics.device_config(meter_object_id(self.gateway_name, m)) for m in meter_ids
        )
        return topics

    def _components(  # noqa: PLR0912 - one branch per kind of entity
        self, object_id: str, code: str, register: Register
    ) -> dict[str, dict[str, Any]]:
        key = reading_key(code)
        component_id = safe_id(key)
        quantity = obis.describe(code)
        numeric = isinstance(register.value, int | float | Decimal)
        template = f"{{{{ value_json.readings[{key!r}].value }}}}"
        named_state = _STATES.get(key)
        entity: dict[str, Any] = {
            "platform": "sensor",
            "unique_id": f"{object_id}_{component_id}",
            "name": quantity.label if quantity else (named_state or (label_of(key), ()))[0],
            "value_template": template,
        }
        device_class = quantity.device_class if quantity else None
        state_class = quantity.state_class if quantity else None
        if quantity is None and numeric and named_state is None:
            state_class = "total_increasing" if obis.is_cumulative(code) else "measurement"
        if named_state is not None:
            # A state, not a measurement: Home Assistant must not average a quadrant.
            device_class = "enum"
        since = _DEVICE_CLASS_SINCE.get(device_class or "")
        if since is not None and self.ha_release < since:
            device_class = None
        unit = register.unit
        if device_class is not None and unit not in _UNITS.get(device_class, {unit}):
            if (code, unit) not in self._warned:
                self._warned.add((code, unit))
                _LOGGER.warning(
                    "%s arrives in %r, which Home Assistant does not accept for %s;"
                    " announcing it without a device class",
                    code,
                    unit,
                    device_class,
                )
            device_class = None
        if device_class == "enum":
            entity["options"] = list(named_state[1] if named_state else TARIFF_OPTIONS)
            if numeric:  # a number on the wire, an option string in Home Assistant
                entity["value_template"] = f"{{{{ value_json.readings[{key!r}].value | int }}}}"
        elif device_class == "timestamp":
            pass
        elif numeric:
            if unit:
                entity["unit_of_measurement"] = unit
            if state_class:
                entity["state_class"] = state_class
            if unit in _PRECISION:
                entity["suggested_display_precision"] = _PRECISION[unit]
        if device_class:
            entity["device_class"] = device_class
        if key in _DIAGNOSTIC:
            entity["entity_category"] = "diagnostic"
        components = {component_id: entity}
        if quantity is not None and quantity.kind is obis.Kind.MAXIMUM:
            # Home Assistant sensors carry one value; the time of the peak is its own entity.
            components[f"{component_id}_time"] = {
                "platform": "sensor",
                "unique_id": f"{object_id}_{component_id}_time",
                "name": f"{quantity.label} time",
                "device_class": "timestamp",
                "value_template": f"{{{{ value_json.readings[{key!r}].at }}}}",
            }
        return components
