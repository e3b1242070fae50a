"""DLMS/COSEM: HDLC, TCP wrapper and wired M-Bus transports, xDLMS APDUs, A-XDR, security suite 0.

decode: ``DlmsDecoder``; stream: ``HanSplitter`` cuts a byte stream into frames; hdlc, apdu,
axdr, security: the layers; lists, layouts, obis: what push lists mean.
"""

from modules.codecs.dlms.decode import DlmsDecoder

__all__ = ["DlmsDecoder"]
