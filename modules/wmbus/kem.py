"""Kamstrup .kem key files: the meters' AES keys as the supplier hands them out.

A .kem file (sometimes inside a .zip) is XML whose ``CipherValue`` holds base64 of an
AES-128-CBC encrypted XML document; key and IV are both the password, UTF-8, padded with
zero bytes to 16. The inner document lists meters: ``MetersInOrder/Meter`` with ``SerialNo``
and ``DEK``, or ``Devices/Device`` with ``SerialNumber`` and a key ``Value``.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.errors import ConfigError

__all__ = ["encrypt_kem", "kem_keys"]

KEM_KEY_BYTES = 16
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def kem_keys(path: str, password: str) -> dict[str, str]:
    """Meter serial number -> AES key (hex) from a .kem or zipped .kem file."""
    try:
        content = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read the .kem file {path}: {err.strerror}") from err
    if zipfile.is_zipfile(io.BytesIO(content)):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith((".kem", ".kem2"))]
            if not names:
                raise ConfigError(f"{path}: the zip holds no .kem file")
            content = archive.read(names[0])
    sealed = _cipher_value(content, path)
    plain = _decrypt(sealed, password, path)
    return _meters(plain, path)


def encrypt_kem(inner_xml: str, password: str) -> bytes:
    """A .kem file around an inner document (tests and demos)."""
    key = _password_key(password)
    data = inner_xml.encode()
    pad = KEM_KEY_BYTES - len(data) % KEM_KEY_BYTES
    data += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key)).encryptor()
    sealed = encryptor.update(data) + encryptor.finalize()
    value = base64.b64encode(sealed).decode()
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#"><CipherData>'
        f"<CipherValue>{value}</CipherValue></CipherData></EncryptedData>"
    ).encode()


def _password_key(password: str) -> bytes:
    key = password.encode()
    if len(key) > KEM_KEY_BYTES:
        raise ConfigError("a .kem password has at most 16 characters")
    return key.ljust(KEM_KEY_BYTES, b"\x00")


def _cipher_value(content: bytes, path: str) -> bytes:
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError as err:
        raise ConfigError(f"{path} is not a .kem file (not XML: {err})") from None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "CipherValue" and element.text:
            try:
                return base64.b64decode(element.text.strip(), validate=False)
            except (binascii.Error, ValueError):
                break
    raise ConfigError(f"{path} holds no encrypted data (no CipherValue)")


def _decrypt(sealed: bytes, password: str, path: str) -> str:
    key = _password_key(password)
    if not sealed or len(sealed) % KEM_KEY_BYTES:
        raise ConfigError(f"{path}: the encrypted data is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key)).decryptor()
    plain = decryptor.update(sealed) + decryptor.finalize()
    if 1 <= plain[-1] <= KEM_KEY_BYTES:
        plain = plain[: -plain[-1]]
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: wrong .kem password (the content does not decrypt)") from None
    start = text.find("<")
    return _CONTROL.sub("", text[start:] if start >= 0 else text)


def _meters(text: str, path: str) -> dict[str, str]:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        raise ConfigError(f"{path}: wrong .kem password (the content is not XML)") from None
    keys: dict[str, str] = {}
    if root.tag == "MetersInOrder":
        for meter in root.iter("Meter"):
            serial, key = meter.findtext("SerialNo"), meter.findtext("DEK")
            if serial and key:
                keys[serial.strip()] = key.strip()
    elif root.tag == "Devices":
        for device in root.iter("Device"):
            serial = device.findtext("SerialNumber")
            key = next((v.text for v in device.iter("Value") if v.text), None)
            if serial and key:
                keys[serial.strip()] = key.strip()
    else:
        raise ConfigError(f"{path}: unexpected .kem content <{root.tag}> (wrong password?)")
    return keys
