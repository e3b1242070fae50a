"""Kamstrup Meter Protocol: the commands a 382 answers, framing with CRC-16/XMODEM, the registers.

commands: requests, responses and ``KmpDecoder``; frame: bytes on the wire; registers: ids,
units and OBIS codes.
"""

from modules.codecs.kmp.commands import KmpDecoder

__all__ = ["KmpDecoder"]
