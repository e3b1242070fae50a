"""Config ``type`` -> adapter class, and protocol -> decoder, imported lazily.

The core never imports a protocol package except through these tables, so a broken or
missing optional dependency of one module cannot stop the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from gateway.errors import ConfigError
from modules.codecs.records import Decoder

__all__ = ["ADAPTERS", "DECODERS", "EMULATORS", "TOOLS", "adapter_class", "decoder", "load"]

ADAPTERS: dict[str, str] = {
    "sim": "modules.sim.adapter:SimAdapter",
    "mbus": "modules.mbus.adapter:MbusAdapter",
    "wmbus": "modules.wmbus.adapter:WmbusAdapter",
    "s0": "modules.s0.adapter:S0Adapter",
    "s0_out": "modules.s0.output:S0OutputAdapter",
    "tariff_input": "modules.tariff_input.adapter:TariffInputAdapter",
    "rs485": "modules.rs485.adapter:Rs485Adapter",
    "tcpip": "modules.tcpip.adapter:TcpipAdapter",
    "optical": "modules.optical.adapter:OpticalAdapter",
    "p1": "modules.p1.adapter:P1Adapter",
    "zwave": "modules.zwave.adapter:ZwaveAdapter",
    "relay": "modules.relay.adapter:RelayAdapter",
    "mqtt_switch": "modules.mqtt_switch.adapter:MqttSwitchAdapter",
    "decode_worker": "modules.decode_worker.adapter:DecodeWorkerAdapter",
    "meter_feed": "modules.meter_feed.adapter:MeterFeedAdapter",
}

# Command-line tools that belong to one protocol: `meter-gateway <tool> ...` calls
# ``main(argv) -> exit status`` with the arguments after the tool's name.
TOOLS: dict[str, tuple[str, str]] = {
    "scan": ("modules.mbus.scan:main", "M-Bus primary and secondary address scan"),
    "listen": ("modules.wmbus.listen:main", "print every wM-Bus telegram heard"),
}

# `meter-gateway simulate TYPE ...`: the other end of a protocol, for tests and trials.
EMULATORS: dict[str, str] = {
    "mbus": "modules.mbus.emulator:main",
    "wmbus": "modules.wmbus.emulator:main",
    "kmp": "modules.optical.emulator:kmp_main",
    "iec62056-21": "modules.optical.emulator:iec_main",
    "dlms": "modules.p1.emulator:dlms_main",
    "p1": "modules.p1.emulator:p1_main",
    "zwave": "modules.zwave.emulator:main",
}

DECODERS: dict[str, str] = {
    "mbus": "modules.codecs.mbus:MbusDecoder",
    "wmbus": "modules.codecs.wmbus:WmbusDecoder",
    "kmp": "modules.codecs.kmp:KmpDecoder",
    "dlms": "modules.codecs.dlms:DlmsDecoder",
    "dsmr": "modules.codecs.dsmr:DsmrDecoder",
    "iec62056-21": "modules.codecs.iec62056_21:IecDecoder",
    "zwave": "modules.codecs.zwave:ZwaveDecoder",
}


def load(target: str) -> Any:
    """Import ``package.module:attribute`` and return the attribute."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def adapter_class(kind: str) -> Any:
    """The adapter class registered for a config ``type``."""
    try:
        target = ADAPTERS[kind]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise ConfigError(f"unknown module type {kind!r} (known: {known})") from None
    try:
        return load(target)
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("modules."):
            raise ConfigError(f"module type {kind!r} needs {err.name!r}: {err}") from err
        raise ConfigError(f"module type {kind!r} is not available in this version") from err


def decoder(protocol: str) -> Decoder:
    """A fresh decoder for a protocol named as in ``meter-gateway decode``."""
    decoder_class = load(DECODERS[protocol])
    instance: Decoder = decoder_class()
    return instance
