"""Wired M-Bus (EN 13757-2 link layer, EN 13757-3 application layer): frames, records, VIFs.

frames: long/short frames and ``MbusDecoder``; records, vif, vife, meaning, types, fixed: the
application layer shared with wireless M-Bus; manufacturers, obis: what the codes mean;
encode: the other direction, for emulators and tests.
"""

from modules.codecs.mbus.frames import MbusDecoder, SecondaryAddress

__all__ = ["MbusDecoder", "SecondaryAddress"]
