"""DSMR P1 telegrams (DSMR 2.2 to 5, Belgian and Luxembourg variants, encrypted P1).

telegram: ``DsmrDecoder`` and the encoders; stream: ``P1Splitter`` cuts a serial stream into
telegrams, clear or encrypted.
"""

from modules.codecs.dsmr.telegram import DsmrDecoder

__all__ = ["DsmrDecoder"]
