"""Identifiers and clock helpers shared by every component."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime

_SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


CONTENT_ID_CHARS = 32
"""A content id is the first this many hex digits of the bytes' SHA-256."""


def content_id(data: bytes) -> str:
    """A content hash usable as an object id (sha256, hex, 32 chars)."""
    return hashlib.sha256(data).hexdigest()[:CONTENT_ID_CHARS]


def idempotency_id(key: str) -> str:
    """Object id from a sender's Idempotency-Key: kept when it is path-safe, hashed otherwise."""
    if _SAFE_KEY.match(key) and not key.startswith("."):
        return "k-" + key
    return "k-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def new_id(prefix: str = "") -> str:
    """A random id, optionally prefixed (``run-…``)."""
    return prefix + uuid.uuid4().hex[:16]


def utcnow() -> datetime:
    """Timezone-aware current UTC time."""
    return datetime.now(UTC)
