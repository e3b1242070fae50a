"""Z-Wave security: the Security 2 (S2) and Security 0 (S0) command classes and their crypto.

Sans-IO like the rest of the codec: ``crypto`` holds the primitives (AES-CMAC, the S2 CKDF key
derivations, NIST SP 800-90A CTR_DRBG, AES-CCM, X25519, the S0 OFB cipher and CBC-MAC),
``s2`` and ``s0`` the commands and the encapsulation of one frame. Who talks to whom with which
key (SPAN tables, nonces, key exchange) is the node's business: ``modules/zwave/security.py``.
"""
