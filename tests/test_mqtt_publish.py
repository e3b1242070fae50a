"""``publish_in_order``: a batch of messages handed to the client at once, against a real broker."""

from __future__ import annotations

import aiomqtt
import pytest

from gateway.errors import GatewayError
from gateway.mqtt.client import publish_in_order
from tests.support.mqtt import Collector, until
from tests.support.processes import Broker

COUNT = 250  # more than the client keeps on the wire (max_inflight_messages below)


def _client(broker: Broker, name: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=name, max_inflight_messages=100, timeout=10
    )


async def test_every_message_arrives_in_order_and_each_puback_is_reported(broker: Broker) -> None:
    collector = Collector(broker.port, ("batch/#",))
    try:
        async with _client(broker, "batch-order") as client:
            acked: list[int] = []
            messages = [(f"batch/{n % 3}", str(n).encode(), 1, False) for n in range(COUNT)]
            await publish_in_order(client, messages, acked.append, 30.0)
            assert sorted(acked) == list(range(COUNT))
            assert len(acked) == COUNT  # each once
            assert not client._pending_publishes  # nothing of ours left in aiomqtt's table
            await until(lambda: len(collector.messages) >= COUNT, 30.0, "every message")
            # QoS 0 has no PUBACK: reported once written (MQTT orders messages per QoS level
            # only, and the outbox queues QoS 1 alone, so these go in a batch of their own).
            written: list[int] = []
            await publish_in_order(client, [("batch/q0", b"0", 0, False)] * 3, written.append, 30)
            assert written == [0, 1, 2]
        by_topic = {
            topic: [int(m.payload) for m in collector.on(topic)]
            for topic in ("batch/0", "batch/1", "batch/2")
        }
        for topic, numbers in by_topic.items():
            expected = [n for n in range(COUNT) if f"batch/{n % 3}" == topic]
            assert numbers == expected, f"{topic} out of order or incomplete"
    finally:
        collector.close()


async def test_a_broker_that_stops_answering_times_the_batch_out(broker: Broker) -> None:
    async with _client(broker, "batch-timeout") as client:
        broker.pause()
        try:
            acked: list[int] = []
            with pytest.raises(aiomqtt.MqttError, match="timed out"):
                await publish_in_order(client, [("batch/x", b"1", 1, False)] * 3, acked.append, 1.0)
            assert acked == []
            assert not client._pending_publishes
        finally:
            broker.resume()


async def test_an_error_in_the_ack_callback_ends_the_batch_with_it(broker: Broker) -> None:
    def refuse(index: int) -> None:
        raise GatewayError(f"message {index} not wanted")

    async with _client(broker, "batch-error") as client:
        with pytest.raises(GatewayError, match="message 0 not wanted"):
            await publish_in_order(client, [("batch/y", b"1", 1, False)] * 5, refuse, 30.0)
        # The client is still usable: its reader did not see the error.
        await client.publish("batch/y", b"after", qos=1)
