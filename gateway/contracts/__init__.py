"""The gateway's public contracts: every HTTP response, MQTT payload and command reply as a
msgspec Struct, one encoder for all of them, and their JSON schemas.

Pure: no I/O, no asyncio. ``http`` holds the API's responses and live-stream messages, ``mqtt``
the published payloads, ``wire`` the encoder and the schema generation the OpenAPI document and
the snapshot tests (``tests/contracts/``) are built from. Command arguments and results are rows
of the command table (``gateway.engine.commands``, ``gateway.commands``).
"""

from gateway.contracts.wire import encode, schema_components, schema_of

__all__ = ["encode", "schema_components", "schema_of"]
