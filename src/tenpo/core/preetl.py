"""The Pre-ETL contract between the streamer and the source adapters (``pos``, ``iot``, ...).

A Pre-ETL turns one landed object into rows of raw tables (schemas in
``tenpo.warehouse.schemas``) plus rejected records with a reason. It is a pure function of
the object's bytes, its registration event and the directory: no I/O of its own, so the
streamer can batch, retry and replay it freely.

``tenpo.core`` is the ground floor: at run time it imports nothing else of tenpo (the
directory and the event only appear in annotations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

if TYPE_CHECKING:  # annotations only: core imports nothing of tenpo when it runs
    from tenpo.control.directory import Directory
    from tenpo.lake.landing import ObjectRegistered


@dataclass(frozen=True)
class Reject:
    """A record (or a whole object) that failed validation, kept in quarantine with ``reason``."""

    table: str  # the raw table the record was meant for
    reason: str  # names the problem: "register '0099' unknown on 2026-10-05"
    record: dict[str, Any] | str | None = None  # the offending record (or an excerpt)
    line: int | None = None  # 1-based line/row/index in the object, where it has one
    replayable: bool = False  # True when a later upload may fix it (e.g. a POS master)


@dataclass
class ParseResult:
    """Rows per raw table and rejects from one object."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def row_count(self) -> int:
        """Rows over every table."""
        return sum(t.num_rows for t in self.tables.values())


class PreEtl(Protocol):
    """A source adapter: ``source`` is the landing source it handles (``pos_vendor_b``...).

    An adapter may also define ``parse_many(items, directory) -> list[ParseResult]`` for a list
    of ``(event, data)``: the streamer then hands it runs of that source's objects, and it must
    return, in order, exactly what :meth:`parse` returns for each (the IoT adapter shares its
    column pass's fixed costs that way).
    """

    source: str

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows and rejects of one object. Must not raise on bad content: reject it instead."""
        ...


def unicode_text(value: str) -> str:
    """``value`` when it is Unicode text; ``ValueError`` when it holds a lone surrogate.

    A JSON escape like ``"\\ud800"`` reads as one (``json.loads``), but no Parquet file can
    store it: a record's text field checked with this (pydantic ``AfterValidator``) is
    rejected alone, where writing it failed the whole object.
    """
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"holds a lone surrogate (U+{ord(value[exc.start]):04X}): not Unicode text"
            ) from None
    return value
