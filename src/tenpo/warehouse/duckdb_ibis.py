"""The Ibis DuckDB backend as tenpo opens it: session zone UTC, instants to epoch seconds directly.

Ibis compiles ``ts.epoch_seconds()`` to ``EPOCH(CAST(ts AS TIMESTAMP))`` for every backend
that lacks its own rule. On a ``TIMESTAMPTZ`` that cast converts each instant to the session
zone's wall clock through ICU — about 95 ns a row, against 9 ns for ``EPOCH(ts)`` — and it is
what the KPI jobs do to every receipt, counter interval and visit they place in a local hour
(``tenpo.jobs._common.local_hour``) or time (``dwell_s``). On a zone-aware timestamp the
compiler here emits ``EPOCH(ts)``: the seconds of the instant itself, which is what the jobs
mean and what the stock SQL gives in the UTC session tenpo always sets. Naive timestamps keep
Ibis' rule. The jobs stay portable Ibis; this only changes how DuckDB spells one operation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis
from ibis.backends.duckdb import Backend as DuckDBBackend
from ibis.backends.sql.compilers.duckdb import DuckDBCompiler

__all__ = ["TenpoDuckDBCompiler", "connect"]


class TenpoDuckDBCompiler(DuckDBCompiler):
    """DuckDB's Ibis compiler with ``EPOCH(ts)`` for zone-aware timestamps (module docstring)."""

    def visit_ExtractEpochSeconds(self, op: Any, *, arg: Any) -> Any:
        if op.arg.dtype.is_timestamp() and op.arg.dtype.timezone is not None:
            return self.f.epoch(arg)
        return super().visit_ExtractEpochSeconds(op, arg=arg)


_COMPILER = TenpoDuckDBCompiler()


def connect(database: str | Path = ":memory:") -> DuckDBBackend:
    """An Ibis DuckDB backend with tenpo's compiler and the session zone UTC (instants come
    back in UTC whatever the machine's zone)."""
    con: DuckDBBackend = ibis.duckdb.connect(str(database))
    con.compiler = _COMPILER
    con.raw_sql("SET TimeZone = 'UTC'")
    return con
