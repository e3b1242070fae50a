"""Z-Wave: the Serial API (framing, messages) and the command classes a meter node speaks.

dispatch: ``ZwaveDecoder`` and command class lookup; serial: frames and control bytes; api/:
Serial API messages; cc/: command class basics, association, multi channel, version;
meter, meter_scales: the Meter command class; security/: Security 2 and Security 0 (commands,
CKDF, CTR_DRBG, AES-CCM, S0's OFB and MAC).
"""

from modules.codecs.zwave.dispatch import ZwaveDecoder

__all__ = ["ZwaveDecoder"]
