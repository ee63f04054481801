"""Events to an MQTT broker (paho-mqtt), for Home Assistant, Node-RED and the like.

Each event is published as JSON to ``{prefix}/{source}/{kind}`` (the source name with characters MQTT
topics reserve replaced) at QoS 1, so the broker acknowledges it. paho keeps unacknowledged messages
queued while the broker is away and sends them when it reconnects (``max_queued``: beyond that the oldest
are dropped, and counted). ``availability`` (``{prefix}/status``: online/offline, retained, with the
offline message as the will) tells subscribers whether the camera app runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mfr.errors import MfrError


def parse_broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not port:
        return text, 1883
    if not port.isdigit():
        raise MfrError(f"--mqtt {text}: the port must be a number (HOST or HOST:PORT)")
    return host, int(port)


class MqttSink:
    def __init__(self, broker: str, prefix: str = "mfr", client_id: str | None = None, max_queued: int = 10_000,
                 connect_timeout: float = 5.0) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise MfrError("--mqtt needs paho-mqtt: pip install 'mfr[mqtt]'") from None
        self.host, self.port = parse_broker(broker)
        self.prefix = prefix.rstrip("/")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "")
        self.client.max_queued_messages_set(max_queued)
        self.client.will_set(f"{self.prefix}/status", "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise MfrError(f"--mqtt {broker}: cannot connect ({exc})") from None
        self.client.loop_start()
        self.client.publish(f"{self.prefix}/status", "online", qos=1, retain=True)
        self.published = 0

    def topic(self, event: dict[str, Any]) -> str:
        source = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(event["source"])).strip("_") or "source"
        return f"{self.prefix}/{source}/{event['kind']}"

    def write(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.client.publish(self.topic(event), json.dumps(event, separators=(",", ":")), qos=1)
            self.published += 1

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout``), say offline, disconnect."""
        info = self.client.publish(f"{self.prefix}/status", "offline", qos=1, retain=True)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            pass
        self.client.disconnect()
        self.client.loop_stop()
