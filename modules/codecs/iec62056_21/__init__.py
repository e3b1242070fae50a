"""IEC 62056-21 (IEC 1107) readout: sign-on, identification, option select, data blocks.

messages: the dialogue and ``IecDecoder``; data: ``address(value*unit)`` data sets.
"""

from modules.codecs.iec62056_21.messages import IecDecoder

__all__ = ["IecDecoder"]
