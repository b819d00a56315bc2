"""Argument checks shared by the bus implementations, so both reject the same inputs."""

from __future__ import annotations

import json
import re
from typing import Any

from tenpo.core.errors import BadInput

# Topics become NATS subjects (dot-separated tokens) and consumers become durable names,
# so both are restricted to characters that are valid there, whichever bus is configured.
_TOPIC = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_CONSUMER = re.compile(r"[A-Za-z0-9_-]+")
MAX_EVENT_ID = 512


def check_topic(topic: str) -> str:
    """``topic`` if it is dot-separated tokens of letters, digits, ``_`` or ``-``."""
    if not isinstance(topic, str) or not _TOPIC.fullmatch(topic):
        raise BadInput(
            f"invalid topic {topic!r}: expected dot-separated tokens of letters, digits, _ or -"
        )
    return topic


def check_consumer(consumer: str, what: str = "consumer name") -> str:
    """``consumer`` if it is a non-empty name of letters, digits, ``_`` or ``-``."""
    if not isinstance(consumer, str) or not _CONSUMER.fullmatch(consumer):
        raise BadInput(f"invalid {what} {consumer!r}: expected letters, digits, _ or -")
    return consumer


def check_event_id(event_id: str) -> str:
    """``event_id`` if it is a non-blank one-line string of at most 512 characters."""
    if not isinstance(event_id, str) or not event_id.strip():
        raise BadInput(f"invalid event_id {event_id!r}: expected a non-blank string")
    if any(ch in event_id for ch in "\r\n\0"):
        raise BadInput(f"invalid event_id {event_id!r}: control characters are not allowed")
    if len(event_id) > MAX_EVENT_ID:
        raise BadInput(f"invalid event_id: {len(event_id)} characters, at most {MAX_EVENT_ID}")
    return event_id


def encode_payload(payload: dict[str, Any]) -> bytes:
    """JSON bytes of ``payload``; :class:`BadInput` when it is not a JSON-serialisable dict."""
    if not isinstance(payload, dict):
        raise BadInput(f"event payload must be a dict, not {type(payload).__name__}")
    try:
        # base.encode's canonical form, but NaN/Infinity are refused: they are not JSON.
        return json.dumps(
            payload, default=str, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise BadInput(f"event payload is not JSON-serialisable: {exc}") from exc


def check_fetch_args(max_events: int, timeout: float) -> None:
    """Reject a non-positive ``max_events`` or a negative ``timeout``."""
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
        raise BadInput(f"max_events must be a positive int, got {max_events!r}")
    if timeout < 0:
        raise BadInput(f"timeout must be >= 0 seconds, got {timeout!r}")
