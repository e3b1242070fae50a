"""An async DLMS/COSEM client over a Link: associate, GET, ACTION (disconnect control), release.

Logical-name referencing with no security or a low-level password (LLS), in the clear or
ciphered with the global keys (glo-get/-set/-action requests and responses, AES-GCM), over HDLC
on a serial line or the wrapper on TCP port 4059. The APDUs are built and read by the sans-IO
codec (``modules.codecs.dlms.apdu``); this module only sequences them.

    async with open_client(link, ClientSettings(password=b"12345678")) as client:
        energy = await client.get(3, "1-0:1.8.0")
        await client.remote_disconnect()
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Literal

from gateway.errors import CommandError, ConnectionLost, FatalAdapterError
from gateway.transport import Link
from modules.codecs.dlms.apdu import (
    AARE,
    ACTION_RESPONSE,
    GET_REQUEST,
    GET_RESPONSE,
    MECHANISM_HLS_GMAC,
    MECHANISM_LLS,
    RLRE,
    ActionResponse,
    Association,
    decode_aare,
    decode_action_response,
    decode_get_response,
    encode_aarq,
    encode_action_request,
    encode_get_request,
    encode_get_request_with_list,
    encode_release_request,
    initiate_request,
    parse_initiate_response,
)
from modules.codecs.dlms.axdr import INTEGER, OCTET_STRING, Data, Reader, decode_data
from modules.codecs.dlms.security import (
    GLO_INITIATE_RESPONSE,
    GlobalCiphering,
    check_hls_gmac,
    hls_gmac,
)
from modules.codecs.errors import DecryptionError, FrameError
from modules.dlms.transports import Addresses, ApduTransport, HdlcTransport, WrapperTransport

__all__ = [
    "CURRENT_ASSOCIATION",
    "DEFAULT_CLIENT_TITLE",
    "DISCONNECT_CONTROL",
    "ClientSettings",
    "ControlState",
    "DlmsClient",
    "data_access_result",
    "open_client",
]

_LOGGER = logging.getLogger(__name__)

# Blue Book 4.5.8: Disconnect control, class 70, its usual logical name and methods.
DISCONNECT_CONTROL = (70, "0-0:96.3.10")
_CONTROL_STATE_ATTRIBUTE = 3
_OUTPUT_STATE_ATTRIBUTE = 2
_REMOTE_DISCONNECT, _REMOTE_RECONNECT = 1, 2
# Blue Book 4.4.4: the current association (class 15) and its reply_to_HLS_authentication.
CURRENT_ASSOCIATION = (15, "0-0:40.0.0")
_REPLY_TO_HLS = 1
_CHALLENGE_BYTES = 16  # Green Book 9.2.7.4: 8 to 64 random octets
_GET_NEXT = 0x02
_EXCEPTION_RESPONSE = 0xD8
_CONFIRMED_SERVICE_ERROR = 0x0E
# The client's system title when ciphering: a FLAG-style "MTG" and a fixed serial. Meters only
# use it for the IV of what the client sends, so it need not be registered anywhere.
DEFAULT_CLIENT_TITLE = b"MTG\x00\x00\x00\x00\x01"
# Servers limit how many attributes one GET-with-list may carry; ten is accepted widely.
MAX_LIST_ITEMS = 10
_MAX_BLOCKS = 1000

# Green Book 9.5: data-access-result and action-result share these values.
_RESULTS = {
    0: "success",
    1: "hardware_fault",
    2: "temporary_failure",
    3: "read_write_denied",
    4: "object_undefined",
    9: "object_class_inconsistent",
    11: "object_unavailable",
    12: "type_unmatched",
    13: "scope_of_access_violated",
    14: "data_block_unavailable",
    15: "long_get_aborted",
    16: "no_long_get_in_progress",
    19: "data_block_number_invalid",
    250: "other_reason",
}
# Green Book 9.4.2: acse-service-user diagnostics of a rejected association.
_DIAGNOSTICS = {
    1: "no reason given",
    2: "application context not supported",
    11: "authentication mechanism not recognised",
    12: "authentication mechanism required",
    13: "authentication failure (wrong password)",
    14: "authentication required",
}


def data_access_result(code: int) -> str:
    """The name of a data-access-result or action-result value."""
    return _RESULTS.get(code, f"result_{code}")


class ControlState(IntEnum):
    """Disconnect control ``control_state`` (Blue Book 4.5.8)."""

    DISCONNECTED = 0
    CONNECTED = 1
    READY_FOR_RECONNECTION = 2


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How to reach and authenticate with the server."""

    transport: Literal["hdlc", "wrapper"] = "wrapper"
    addresses: Addresses = field(default_factory=Addresses)
    password: bytes | None = None  # LLS secret; None: no security (public client)
    # Ciphering with the global keys (GUEK, GAK); None: APDUs in the clear.
    key: bytes | None = None
    auth_key: bytes | None = None
    system_title: bytes = DEFAULT_CLIENT_TITLE
    # "hls-gmac": high-level security, mechanism 5 (needs the keys; the password is unused).
    authentication: Literal["lls", "hls-gmac"] = "lls"


class DlmsClient:
    """One application association with a server; methods map to xDLMS services."""

    def __init__(self, transport: ApduTransport, settings: ClientSettings) -> None:
        self._transport = transport
        self._settings = settings
        self._invoke = itertools.cycle(range(1, 16))
        self.association: Association | None = None
        self._cipher: GlobalCiphering | None = None

    async def associate(self) -> Association:
        """AARQ -> AARE; FatalAdapterError when the server refuses (wrong password, key...)."""
        settings = self._settings
        hls = settings.authentication == "hls-gmac"
        challenge = secrets.token_bytes(_CHALLENGE_BYTES) if hls else None
        if hls and (settings.key is None or settings.auth_key is None):
            raise FatalAdapterError("HLS-GMAC needs the encryption and authentication keys")
        if settings.key is not None:
            # A fresh association starts the counters afresh on both sides.
            self._cipher = GlobalCiphering(
                system_title=settings.system_title, key=settings.key, auth_key=settings.auth_key
            )
            request = encode_aarq(
                password=challenge if hls else settings.password,
                calling_title=settings.system_title,
                user_information=self._cipher.wrap(initiate_request()),
                mechanism=MECHANISM_HLS_GMAC if hls else MECHANISM_LLS,
            )
        else:
            request = encode_aarq(password=settings.password)
        answer = await self._transport.request(request)
        if not answer or answer[0] != AARE:
            raise ConnectionLost(f"expected an AARE, got {answer[:1].hex() or 'nothing'}")
        association = decode_aare(answer)
        if not association.accepted:
            reason = _DIAGNOSTICS.get(association.diagnostic or 0, f"{association.diagnostic}")
            raise FatalAdapterError(f"the meter refused the association: {reason}")
        if self._cipher is not None:
            association = self._open_initiate_response(association, self._cipher)
        self.association = association
        if challenge is not None and self._cipher is not None:
            await self._hls_pass_three(association, self._cipher, challenge)
        return association

    async def _hls_pass_three(
        self, association: Association, cipher: GlobalCiphering, challenge: bytes
    ) -> None:
        """Answer the meter's challenge and check its answer to ours (HLS passes 3 and 4)."""
        if association.challenge is None or association.system_title is None:
            raise FatalAdapterError("the meter answered HLS-GMAC without a challenge")
        assert cipher.auth_key is not None
        cipher.invocation_counter += 1  # f(StoC) takes a counter value of its own
        reply = hls_gmac(
            association.challenge,
            system_title=cipher.system_title,
            invocation_counter=cipher.invocation_counter,
            key=cipher.key,
            auth_key=cipher.auth_key,
        )
        try:
            response = await self.action(
                *CURRENT_ASSOCIATION, _REPLY_TO_HLS, Data(OCTET_STRING, reply)
            )
        except CommandError as err:
            raise FatalAdapterError(
                f"the meter refused our HLS reply ({err.code}): wrong encryption or "
                "authentication key"
            ) from None
        answer = response.data.value if isinstance(response.data, Data) else None
        if not isinstance(answer, bytes) or not check_hls_gmac(
            answer,
            challenge,
            system_title=association.system_title,
            key=cipher.key,
            auth_key=cipher.auth_key,
        ):
            raise FatalAdapterError(
                "the meter's answer to our HLS challenge does not check: it does not hold "
                "these keys"
            )

    def _open_initiate_response(
        self, association: Association, cipher: GlobalCiphering
    ) -> Association:
        if not association.ciphered or association.system_title is None:
            raise FatalAdapterError(
                "a key is configured but the meter answered without ciphering "
                "(no responding system title): remove the key, or check the client address"
            )
        cipher.peer_title = association.system_title
        user = association.user_information
        if user[:1] != bytes([GLO_INITIATE_RESPONSE]):
            return association
        try:
            plain = cipher.unwrap(user)
        except DecryptionError as err:
            raise FatalAdapterError(f"the meter's answer does not decipher: {err}") from None
        version, conformance, max_pdu = parse_initiate_response(plain)
        return replace(association, dlms_version=version, conformance=conformance, max_pdu=max_pdu)

    async def get(self, class_id: int, obis: str, attribute: int = 2) -> Data:
        """One attribute's value; CommandError when the server answers with an error."""
        invoke = next(self._invoke)
        answer = await self._request(
            encode_get_request(class_id, obis, attribute, invoke_id=invoke)
        )
        results = await self._get_results(answer, invoke, listed=False)
        result = results[0]
        if isinstance(result, int):
            name = data_access_result(result)
            raise CommandError(name, f"GET {class_id}/{obis}/{attribute}: {name}")
        return result

    async def get_many(self, attributes: Sequence[tuple[int, str, int]]) -> list[Data | int]:
        """Several attributes, with-list in chunks; an int is that item's data-access-result."""
        results: list[Data | int] = []
        for start in range(0, len(attributes), MAX_LIST_ITEMS):
            chunk = list(attributes[start : start + MAX_LIST_ITEMS])
            if len(chunk) == 1:
                try:
                    results.append(await self.get(*chunk[0]))
                except CommandError as err:
                    results.append(_code_of(err.code))
                continue
            invoke = next(self._invoke)
            answer = await self._request(encode_get_request_with_list(chunk, invoke_id=invoke))
            got = await self._get_results(answer, invoke, listed=True)
            if len(got) != len(chunk):
                raise ConnectionLost(f"asked for {len(chunk)} attributes, got {len(got)}")
            results.extend(got)
        return results

    async def action(
        self, class_id: int, obis: str, method: int, parameter: Data | None = None
    ) -> ActionResponse:
        """Invoke a method; CommandError when the server does not carry it out."""
        invoke = next(self._invoke)
        request = encode_action_request(class_id, obis, method, parameter, invoke_id=invoke)
        answer = await self._request(request)
        if not answer or answer[0] != ACTION_RESPONSE:
            raise ConnectionLost(f"expected an ACTION response, got {answer[:1].hex()}")
        response = decode_action_response(answer)
        if not response.success:
            name = data_access_result(response.result)
            raise CommandError(name, f"ACTION {class_id}/{obis} method {method}: {name}")
        return response

    async def control_state(self) -> ControlState:
        """The disconnector's state (connected, disconnected, ready for reconnection)."""
        data = await self.get(*DISCONNECT_CONTROL, _CONTROL_STATE_ATTRIBUTE)
        if not isinstance(data.value, int):
            raise CommandError("type_unmatched", "control_state is not an enum")
        return ControlState(data.value)

    async def output_state(self) -> bool:
        """True when the supply is connected (the disconnector's output_state)."""
        data = await self.get(*DISCONNECT_CONTROL, _OUTPUT_STATE_ATTRIBUTE)
        return bool(data.value)

    async def remote_disconnect(self) -> ControlState:
        """Open the breaker (method 1, remote_disconnect); the state afterwards."""
        await self.action(*DISCONNECT_CONTROL, _REMOTE_DISCONNECT, Data(INTEGER, 0))
        return await self.control_state()

    async def remote_reconnect(self) -> ControlState:
        """Close the breaker, or arm it for a local reconnect (method 2); the state after."""
        await self.action(*DISCONNECT_CONTROL, _REMOTE_RECONNECT, Data(INTEGER, 0))
        return await self.control_state()

    async def release(self) -> None:
        """RLRQ -> RLRE; the association ends either way."""
        if self.association is None:
            return
        self.association = None
        answer = await self._transport.request(encode_release_request())
        if answer[:1] != bytes([RLRE]):
            _LOGGER.debug("release answered with %s", answer[:1].hex())

    async def _request(self, apdu: bytes) -> bytes:
        cipher = self._cipher
        answer = await self._transport.request(apdu if cipher is None else cipher.wrap(apdu))
        if answer[:1] in (bytes([_EXCEPTION_RESPONSE]), bytes([_CONFIRMED_SERVICE_ERROR])):
            raise CommandError("service_error", f"the meter answered {answer.hex()}")
        if cipher is None:
            return answer
        try:
            return cipher.unwrap(answer)
        except DecryptionError as err:
            # A wrong key or a replayed answer is no line fault: retrying will not help.
            raise FatalAdapterError(f"the meter's answer does not decipher: {err}") from None
        except FrameError as err:
            raise ConnectionLost(f"a ciphered answer was cut short: {err}") from None

    async def _get_results(self, answer: bytes, invoke: int, *, listed: bool) -> list[Data | int]:
        if not answer or answer[0] != GET_RESPONSE:
            raise ConnectionLost(f"expected a GET response, got {answer[:1].hex()}")
        response = decode_get_response(answer)
        if response.invoke_id != invoke:
            raise ConnectionLost(f"GET response for invoke id {response.invoke_id}, not {invoke}")
        if response.block_number is None:
            return list(response.results)
        # GET-Response-With-Datablock: ask for the next block until the last one.
        blocks: list[bytes] = []
        for _ in range(_MAX_BLOCKS):
            if response.raw_block is None:
                return list(response.results)  # the block carried a data-access-result
            blocks.append(response.raw_block)
            if response.last_block:
                return _block_results(b"".join(blocks), listed=listed)
            assert response.block_number is not None
            request = bytes([GET_REQUEST, _GET_NEXT, 0xC0 | invoke])
            answer = await self._request(request + response.block_number.to_bytes(4, "big"))
            response = decode_get_response(answer)
        raise ConnectionLost(f"GET did not end within {_MAX_BLOCKS} blocks")


@asynccontextmanager
async def open_client(link: Link, settings: ClientSettings) -> AsyncIterator[DlmsClient]:
    """Connect the link layer, associate, yield the client; release and disconnect after."""
    transport: ApduTransport
    if settings.transport == "hdlc":
        transport = HdlcTransport(link, settings.addresses)
    else:
        transport = WrapperTransport(link, settings.addresses)
    await transport.connect()
    client = DlmsClient(transport, settings)
    try:
        await client.associate()
        yield client
        await client.release()
    finally:
        await transport.close()


def _block_results(raw: bytes, *, listed: bool) -> list[Data | int]:
    reader = Reader(raw)
    if not listed:
        return [decode_data(reader)]
    results: list[Data | int] = []
    for _ in range(reader.length("result count")):
        choice = reader.byte("get-data-result")
        results.append(decode_data(reader) if choice == 0 else reader.byte("data-access-result"))
    if reader.remaining:
        raise FrameError("bytes left after the GET results", offset=reader.pos)
    return results


def _code_of(name: str) -> int:
    return next((code for code, text in _RESULTS.items() if text == name), 250)
