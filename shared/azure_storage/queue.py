"""The import queue and its poison twin, on Azure Storage queues (``azure-storage-queue``): by
connection string locally (Azurite), by identity in Azure (:class:`~.store.StorageConfig`).

Queue messages are base64 text, as the Functions host's default ``messageEncoding`` expects.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import (
    QueueClient,
    QueueMessage,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from shared.azure_storage.store import StorageConfig

log = logging.getLogger(__name__)


def _queue_service(config: StorageConfig) -> QueueServiceClient:
    if config.connection_string:
        return QueueServiceClient.from_connection_string(config.connection_string)
    url = config.queue_service_uri or f"https://{config.account}.queue.core.windows.net"
    return QueueServiceClient(url, credential=config.credential())


@dataclass
class Received:
    id: str
    pop_receipt: str
    dequeue_count: int
    content: str


class JobQueue:
    """The ``imports`` queue and its ``imports-poison`` twin."""

    def __init__(self, config: StorageConfig) -> None:
        service = _queue_service(config)
        # base64, as the Functions host's default messageEncoding expects
        policies = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
        }
        self.queue: QueueClient = service.get_queue_client(config.queue_name, **policies)
        self.poison: QueueClient = service.get_queue_client(f"{config.queue_name}-poison", **policies)

    def ensure(self) -> None:
        for q in (self.queue, self.poison):
            with contextlib.suppress(ResourceExistsError):
                q.create_queue()

    def send(self, content: str, delay: float = 0) -> None:
        """Put ``content`` on the queue, hidden for ``delay`` seconds first."""
        self.queue.send_message(content, visibility_timeout=math.ceil(delay) if delay > 0 else None)

    def receive(self, lease: float) -> Received | None:
        for message in self.queue.receive_messages(max_messages=1, visibility_timeout=int(lease)):
            return _received(message)
        return None

    def extend(self, message: Received, seconds: float) -> Received:
        """Keep ``message`` hidden for ``seconds`` more (0 makes it visible at once)."""
        updated = self.queue.update_message(message.id, message.pop_receipt, visibility_timeout=int(seconds))
        return Received(message.id, updated.pop_receipt or message.pop_receipt, message.dequeue_count, message.content)

    def delete(self, message: Received) -> None:
        try:
            self.queue.delete_message(message.id, message.pop_receipt)
        except ResourceNotFoundError:
            log.info("message %s was already gone", message.id)

    def to_poison(self, message: Received) -> None:
        self.poison.send_message(message.content)
        self.delete(message)

    def peek_poison(self) -> list[str]:
        return [str(m.content) for m in self.poison.peek_messages(max_messages=32)]

    def healthy(self) -> bool:
        self.queue.get_queue_properties()
        return True


def _received(message: QueueMessage) -> Received:
    return Received(message.id, message.pop_receipt or "", message.dequeue_count or 1, str(message.content))
