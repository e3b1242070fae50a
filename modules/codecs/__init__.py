"""Sans-IO protocol codecs: bytes in, typed values out; no asyncio, nothing from the gateway.

One subpackage per protocol (mbus, wmbus, dlms, kmp, iec62056_21, dsmr, zwave), each with a
short ``__init__`` as its public face; shared here: ``errors`` (the codecs' error tree),
``records`` (``Record``, ``Decoded``, the decode JSON), ``obis`` (OBIS code parsing), ``crc`` and
``crypto``. ``meter-gateway decode`` is this library's first user.
"""
