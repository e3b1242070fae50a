"""The broker connection both MQTT clients share: the bridge and the mqtt_switch actuator.

A fresh session on every connect, a bounded wait for CONNACK, a lost link noticed by the work
in hand, the sorting of connection errors into "retry soon" and "retrying cannot fix it", and
the outbox's batches published in order without a task per message (``publish_in_order``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import aiomqtt
from aiomqtt.exceptions import MqttCodeError, MqttConnectError
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY, MQTT_ERR_SUCCESS
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import MqttSection, read_secret

__all__ = [
    "CONNECT_TIMEOUT_S",
    "broker_client",
    "connected",
    "first_of",
    "publish_in_order",
    "raise_if_cancelling",
    "refused_for_good",
    "run_session_tasks",
    "transient",
    "while_linked",
]

_E = TypeVar("_E", bound=BaseException)

# aiomqtt waits for CONNACK without a limit: a broker (or a half-dead NAT) that accepts the TCP
# connection and never answers CONNECT would hold the bridge forever. MQTT 3.1.1 section 3.1
# leaves the wait to the client; this is the same bound as any other round trip.
CONNECT_TIMEOUT_S = 30.0
# Concurrent publishes above this are logged by aiomqtt as piling up.
PENDING_PUBLISH_WARNING = 2000
# CONNACK reason codes that retrying cannot fix (MQTT 5 table 3-1; paho maps 3.1.1's 4 and 5).
_AUTH_FAILURES = frozenset({0x84, 0x85, 0x86, 0x87, 0x8C})
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOBUFS,
        errno.ENOMEM,
        errno.EAGAIN,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
    }
)


async def broker_client(  # noqa: PLR0913 - keyword-only options
    broker: MqttSection,
    *,
    identifier: str,
    timeout_s: float,
    will: aiomqtt.Will | None = None,
    max_inflight: int | None = None,
    session_expiry_s: int | None = None,
) -> aiomqtt.Client:
    """A client for ``broker`` that starts a fresh session; secrets are read now, off the loop.

    With ``session_expiry_s`` it speaks MQTT 5 whatever ``broker.protocol`` says and resumes
    its session instead: the broker keeps the subscriptions and queues QoS 1 messages for that
    long while the client is away (MQTT 5 section 3.1.2.11.2), and re-sends the ones it did not
    acknowledge. Decode workers and engine feeds want exactly that; the bridge does not."""
    password, tls = await asyncio.to_thread(_secrets, broker)
    persistent = session_expiry_s is not None
    v5 = broker.protocol == "5" or persistent
    properties = None
    if persistent:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry_s
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=password,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        will=will,
        # A fresh session each time: a command queued by the broker while we were away
        # (a breaker switch, say) must not run minutes later.
        clean_session=None if v5 else True,
        clean_start=(not persistent) if v5 else MQTT_CLEAN_START_FIRST_ONLY,
        properties=properties,
        keepalive=broker.keepalive_s,
        timeout=timeout_s,
        max_inflight_messages=max_inflight,
        tls_context=tls,
    )
    # aiomqtt warns above 10 concurrent publishes; a flush of many meters' state messages, a
    # drained backlog and the discovery of every meter are that by design, so only warn when
    # publishes really pile up.
    client.pending_calls_threshold = PENDING_PUBLISH_WARNING
    return client


class _Batch:
    """Messages of one ``publish_in_order`` call the broker has not acknowledged yet."""

    def __init__(self, count: int, on_acked: Callable[[int], None]) -> None:
        self.left = count
        self.on_acked = on_acked
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def acked(self, index: int) -> None:
        # Called from paho's reading of the socket: an error here must end the batch, not the
        # client's reader.
        if self.done.done():
            return
        try:
            self.on_acked(index)
        except Exception as err:  # noqa: BLE001 - handed to the batch's waiter, raised there
            self.done.set_exception(err)
            return
        self.left -= 1
        if self.left == 0:
            self.done.set_result(None)


class _Puback(asyncio.Event):
    """A message's entry in aiomqtt's table of publishes waiting for their PUBACK: aiomqtt's
    on_publish callback calls ``set()`` when it comes, which counts the message off its batch."""

    def __init__(self, batch: _Batch, index: int) -> None:
        super().__init__()
        self._batch = batch
        self._index = index

    def set(self) -> None:
        """The broker has the message."""
        self._batch.acked(self._index)


async def publish_in_order(
    client: aiomqtt.Client,
    messages: Sequence[tuple[str, bytes, int, bool]],
    on_acked: Callable[[int], None],
    timeout_s: float,
) -> None:
    """Publish ``messages`` (topic, payload, QoS, retain) in their order; return once the
    broker has every one, calling ``on_acked(i)`` as message i's PUBACK arrives (at once for
    QoS 0). aiomqtt.MqttError when one cannot be sent or ``timeout_s`` passes first.

    What ``aiomqtt.Client.publish`` does, for a batch: that costs a task, an event and a timed
    wait per message, about half the CPU of a QoS 1 state message (81-84 against 40-44 us a
    message here, 10,000 messages of 3.1 kB to a local mosquitto). This hands the messages to
    the paho client aiomqtt wraps and files each in aiomqtt's table of pending publishes, as its
    publish() does, so aiomqtt's own PUBACK callback reports them: two of aiomqtt's attributes,
    pinned by constraints.txt and exercised by every MQTT test against a real broker.
    """
    if not messages:
        return
    batch = _Batch(len(messages), on_acked)
    paho_client = client._client  # aiomqtt's own: see above
    pending = client._pending_publishes
    filed: list[tuple[int, _Puback]] = []
    try:
        for index, (topic, payload, qos, retain) in enumerate(messages):
            info = paho_client.publish(topic, payload, qos, retain)
            if info.rc != MQTT_ERR_SUCCESS:
                raise MqttCodeError(info.rc, "Could not publish message")
            if info.is_published():  # QoS 0, written
                batch.acked(index)
                continue
            if info.mid in pending:
                raise aiomqtt.MqttError(f"message id {info.mid} is still waiting for its PUBACK")
            waiter = _Puback(batch, index)
            pending[info.mid] = waiter
            filed.append((info.mid, waiter))
        try:
            async with asyncio.timeout(timeout_s):
                await batch.done
        except TimeoutError:
            raise aiomqtt.MqttError("Operation timed out") from None
    finally:
        for mid, waiter in filed:
            if pending.get(mid) is waiter:
                del pending[mid]


@contextlib.asynccontextmanager
async def connected(client: aiomqtt.Client, timeout_s: float) -> AsyncIterator[aiomqtt.Client]:
    """``async with client``, but CONNECT must be answered within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.__aenter__()
    except TimeoutError:
        # Close the half-open socket now rather than at paho's keepalive check; the client
        # object is dropped, so its lock and futures do not matter any more.
        client._client.disconnect()
        raise aiomqtt.MqttError(f"no answer to CONNECT within {timeout_s:.0f} s") from None
    try:
        yield client
    finally:
        await client.__aexit__(None, None, None)
        # aiomqtt leaves a lost link's error in a future nobody awaits; asyncio would log it at
        # ERROR with a traceback ("never retrieved") although the bridge already said why.
        lost = client._disconnected
        if lost.done() and not lost.cancelled():
            lost.exception()


async def while_linked(client: aiomqtt.Client, work: Coroutine[Any, Any, None]) -> None:
    """Await ``work``, but end it with an MqttError as soon as the connection is lost.

    aiomqtt fails a publish that waits for its PUBACK only at its timeout (the bridge's
    PUBLISH_TIMEOUT_S), however long ago the socket closed. The session tasks learn of a lost
    link from the message stream; the greeting before them did not, and a broker restarted
    during it (or a link cut there) held the bridge for half a minute, unable to reconnect."""
    task = asyncio.create_task(work, name="mqtt-greet")
    # Shielded: the client's own future must survive our giving up on it.
    lost = asyncio.shield(client._disconnected)
    try:
        await asyncio.wait([task, lost], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
        if lost.done():
            error = None if lost.cancelled() else lost.exception()
        else:
            lost.cancel()
            error = None
    if not task.cancelled() and task.exception() is None:
        return
    if not task.cancelled():
        task.result()  # the work's own error says what happened
    if isinstance(error, aiomqtt.MqttError):
        raise error
    raise aiomqtt.MqttError("the broker closed the connection")


async def run_session_tasks(tasks: Mapping[str, Coroutine[Any, Any, None]]) -> None:
    """Run a broker session's tasks (by name) until one fails; a lost link raises its MqttError."""
    try:
        async with asyncio.TaskGroup() as group:
            for name, task in tasks.items():
                group.create_task(task, name=name)
    except ExceptionGroup as group:
        # One task saw the connection go; the others were cancelled. Report that one.
        first = first_of(group, aiomqtt.MqttError)
        if first is None:
            raise
        raise first from None


def first_of(group: BaseExceptionGroup[Any], kind: type[_E]) -> _E | None:
    """The first ``kind`` exception anywhere in ``group`` (nested groups included), or None."""
    matched = group.subgroup(kind)
    if matched is None:
        return None
    first: BaseException = matched
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    assert isinstance(first, kind)
    return first


def transient(err: BaseException) -> bool:
    """True for an OSError that passes by itself: out of file handles or memory for a moment
    (a flood of LAN clients, say), or the network. Retried with the normal backoff, not the
    long wait of a bad certificate or a missing secret file."""
    if isinstance(err, ssl.SSLError) or not isinstance(err, OSError):
        return False
    return isinstance(err, ConnectionError | TimeoutError) or err.errno in _TRANSIENT_ERRNOS


def raise_if_cancelling() -> None:
    """Honour a cancellation that an await swallowed. Python 3.11's ``asyncio.wait_for`` (inside
    every aiomqtt publish) returns the result when the publish completes in the same loop turn
    as a cancel, and the cancel is lost: a session task then waited forever for the next
    command while shutdown waited forever for it (seen on a busy machine). Checked at the top
    of every loop of a session's own tasks, so a cancel is at most one iteration late. Not in
    ``run``: 3.11's TaskGroup leaves its parent's cancel count raised after a child failed."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def refused_for_good(err: MqttConnectError) -> bool:
    """True when the broker's CONNACK refusal is one that retrying cannot fix (credentials)."""
    return _reason_value(err.rc) in _AUTH_FAILURES


def _secrets(broker: MqttSection) -> tuple[str | None, ssl.SSLContext | None]:
    """Password and TLS context, read at each connect so rotated files take effect."""
    password = broker.password
    if broker.password_file:
        password = read_secret(broker.password_file, what="mqtt.password_file")
    tls = broker.tls
    if tls is None:
        return password, None
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return password, context


def _reason_value(rc: int | ReasonCode | None) -> int:
    if isinstance(rc, ReasonCode):
        return rc.value
    return rc if isinstance(rc, int) else -1
