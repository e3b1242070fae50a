"""The MQTT side: the bridge (state, events, profiles out; commands in), Home Assistant
discovery, the payloads and topics, presence (status and availability) and the outbox that
holds data while the broker does not acknowledge it. ``client`` is the broker connection the
bridge shares with the mqtt_switch actuator."""

from gateway.mqtt.bridge import MqttBridge
from gateway.view import GatewayView, Output

__all__ = ["MqttBridge", "outputs"]


def outputs(view: GatewayView) -> list[Output]:
    """The ``mqtt`` output (the registry asks only when ``[mqtt]`` is enabled)."""
    return [MqttBridge(view)]
