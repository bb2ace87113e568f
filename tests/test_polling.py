"""The local worker polls an empty queue as the Functions host does, with host.json's settings."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from shared.service.localworker import Polling
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_an_empty_queue_is_polled_ever_less_often_up_to_the_cap_and_at_once_after_a_message() -> None:
    polling = Polling(0.5, jitter=lambda: 0.5)  # no jitter
    assert [round(polling.empty(), 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    polling.found()
    assert polling.empty() == 0.1
    jittered = Polling(10.0, jitter=lambda: 1.0)
    assert round(jittered.empty(), 3) == 0.12 and round(jittered.empty(), 3) == 0.24  # +20 %


def _timespan(text: str) -> float:
    hours, minutes, seconds = text.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds)).total_seconds()


def test_the_local_worker_defaults_are_host_json_s() -> None:
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    defaults = Settings()
    assert _timespan(queues["maxPollingInterval"]) == defaults.max_polling
    assert queues["maxDequeueCount"] == defaults.max_dequeue_count
    assert _timespan(queues["visibilityTimeout"]) == defaults.retry_delay
