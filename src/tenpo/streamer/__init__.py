"""Streamer: follows ``objects.registered``, runs each source's Pre-ETL, writes raw tables.

Loading is exactly once in effect over at-least-once delivery (see :class:`Streamer`); bad
records and unparseable objects go to ``quarantine/`` with their reason.
"""

from tenpo.streamer._ledger import LoadedObject, LoadLedger
from tenpo.streamer._registry import DEFAULT_PRE_ETLS, default_pre_etls
from tenpo.streamer._signals import stop_on_signals
from tenpo.streamer._status import ObjectStatus, QuarantinedRecord, object_status
from tenpo.streamer._streamer import CONSUMER, BatchStats, Streamer
from tenpo.streamer._tables import read_table

__all__ = [
    "CONSUMER",
    "DEFAULT_PRE_ETLS",
    "BatchStats",
    "LoadLedger",
    "LoadedObject",
    "ObjectStatus",
    "QuarantinedRecord",
    "Streamer",
    "default_pre_etls",
    "object_status",
    "read_table",
    "stop_on_signals",
]
