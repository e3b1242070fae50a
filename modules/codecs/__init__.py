"""Sans-IO protocol codecs: bytes in, typed values out; no asyncio here."""
