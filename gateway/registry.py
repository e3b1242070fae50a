"""Config ``type`` -> adapter class, and protocol -> decoder, imported lazily.

The core never imports a protocol package except through these tables, so a broken or
missing optional dependency of one module cannot stop the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from gateway.decoding import Decoder
from gateway.errors import ConfigError

__all__ = ["ADAPTERS", "DECODERS", "adapter_class", "decoder", "load"]

ADAPTERS: dict[str, str] = {
    "sim": "modules.sim.adapter:SimAdapter",
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
    return load(target)


def decoder(protocol: str) -> Decoder:
    """A fresh decoder for a protocol named as in ``meter-gateway decode``."""
    decoder_class = load(DECODERS[protocol])
    instance: Decoder = decoder_class()
    return instance
