"""Wireless M-Bus (EN 13757-4/-7, OMS): telegrams through DLL, ELL, AFL and TPL, AES modes 5/7/CTR.

telegrams: ``WmbusDecoder``; layers: the headers below the application; compact: Kamstrup
compact frames and the cache of learned formats; tx: a transmitter for emulators and tests.
"""

from modules.codecs.wmbus.telegrams import WmbusDecoder, decode_telegram

__all__ = ["WmbusDecoder", "decode_telegram"]
