"""The warehouse catalog: every raw and mart table of the lake, by name, as an Ibis table.

Each table is a DuckDB view over its Parquet dataset
``tables/{table}/tenant=*/date=*/*.parquet``. The hive partition keys (``tenant``, ``date``)
are read with fixed types and kept apart from the files' own ``tenant_id`` and
``business_date`` columns, which are the values exposed; the partition date only serves to
prune files when a caller asks for some dates. Columns are cast to the contract schema of
:mod:`tenpo.warehouse.schemas`, so a file written before a column was added reads with that
column null, and a table with no file yet reads as an empty table of the right schema (DuckDB
refuses an empty glob, so that case is a typed ``WHERE false`` view).

Raw tables are read deduplicated by their natural key (``NATURAL_KEYS``): the streamer loads
exactly once, but a source re-sending the same record in a new object must still count once.
Among duplicates the row from the smallest ``source_object_id`` wins (then file, then row
order), so every read picks the same row.
POS tables are versioned instead: a (tenant, store, transaction id) sent again in another
object is a corrected re-send, and the version received last (``received_at``) replaces the
earlier one, the transaction and all its lines (docs/vendors.md).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from types import TracebackType

import duckdb
import ibis
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem
from ibis.backends.duckdb import Backend as DuckDBBackend

from tenpo.core.errors import BadInput, ConfigError, LakeError, NotFound
from tenpo.core.settings import Settings
from tenpo.lake.base import Lake, open_lake
from tenpo.lake.keys import table_prefix
from tenpo.warehouse.schemas import EVENT_KEYS, MART_TABLES, NATURAL_KEYS, RAW_TABLES

__all__ = ["TABLES", "BaseWarehouse", "Warehouse", "duckdb_type", "open_warehouse"]

log = logging.getLogger(__name__)

TABLES: dict[str, pa.Schema] = {**RAW_TABLES, **MART_TABLES}
"""Every table the warehouse exposes, with its contract schema."""

SUPPORTED_BACKENDS = ("duckdb",)

# POS tables read as "latest received version per transaction" instead of by natural key.
_POS_VERSIONED = ("raw_pos_transactions", "raw_pos_lines")
_POS_TX_KEY = ("tenant_id", "store_id", "transaction_id")

# Internal columns of the scan views: partition keys and the position used to order duplicates.
_TENANT, _DATE, _FILE, _ROW = "_part_tenant", "_part_date", "_file", "_row"
# The parts of a table, relative to its prefix (hive partitions tenant=/date=).
_PART_GLOB = "tenant=*/date=*/*.parquet"


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB SQL type for an Arrow type of the table schemas; ``ConfigError`` if unmapped."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_date32(arrow_type):
        return "DATE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision}, {arrow_type.scale})"
    simple = {
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
    }
    if arrow_type in simple:
        return simple[arrow_type]
    raise ConfigError(f"no DuckDB type for Arrow type {arrow_type}")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class BaseWarehouse(ABC):
    """Every raw and mart table of the lake by name, as Ibis tables of one engine.

    The reading rules (contract schema, natural-key deduplication, POS versions, partition
    pruning) are Ibis expressions over each engine's *scan* of a table — its typed columns
    plus the partition keys and the position (file, row) of each row — so every engine
    reads the same rows. Subclasses provide the scan and execution: :class:`Warehouse`
    (DuckDB, in process) and :class:`tenpo.warehouse.spark.SparkWarehouse`.
    Build one per unit of work (a job run, a CLI command) and close it.
    """

    engine: str = ""
    """The engine's name as in ``Settings.engine``."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    # -- engine-specific ----------------------------------------------------------------------
    @property
    @abstractmethod
    def con(self) -> ibis.BaseBackend:
        """The Ibis backend (for expressions spanning several tables)."""

    @abstractmethod
    def _scan(self, name: str, schema: pa.Schema) -> ibis.Table:
        """Table ``name``'s rows as stored: contract columns plus ``_part_tenant``,
        ``_part_date`` (the hive partition keys), ``_file`` and ``_row`` (position)."""

    @abstractmethod
    def to_arrow(self, expr: ibis.Table) -> pa.Table:
        """Execute an expression of this warehouse into an Arrow table."""

    @abstractmethod
    def sql(self, query: str) -> pa.Table:
        """Run a SELECT (the engine's SQL dialect) over the tables, by name, into Arrow."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine's resources held by this warehouse."""

    def __enter__(self) -> BaseWarehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API -------------------------------------------------------------------------
    def table(self, name: str, *, dates: Iterable[date] | None = None) -> ibis.Table:
        """Table ``name`` with its contract schema; raw tables deduplicated by natural key.

        ``dates`` restricts the read to those business-date partitions (files of other dates
        are never opened). ``NotFound`` for a name that is not a table of the contract.
        """
        schema = self._schema(name)
        wanted = None if dates is None else sorted(set(dates))
        scan = self._scan(name, schema)
        if wanted is not None:
            scan = scan.filter(scan[_DATE].isin(wanted)) if wanted else scan.limit(0)
        keys = NATURAL_KEYS.get(name)
        if name in _POS_VERSIONED:
            scan = self._latest_pos_version(name, scan, restricted=wanted is not None)
        elif keys is not None:
            order = [scan.source_object_id, scan[_FILE], scan[_ROW]]
            rank = ibis.row_number().over(ibis.window(group_by=list(keys), order_by=order))
            scan = scan.mutate(_rank=rank).filter(ibis._["_rank"] == 0)
        event_keys = EVENT_KEYS.get(name)
        if event_keys is not None:
            # A device's (device_id, seq) counts once: keep the rows of its first object only.
            # (A column first, then the filter: Ibis's PySpark compiler mis-scopes a window
            # function inside a filter predicate.)
            first = scan.source_object_id.min().over(ibis.window(group_by=list(event_keys)))
            scan = scan.mutate(_first=first)
            scan = scan.filter(scan.seq.isnull() | (scan.source_object_id == scan._first))
        return scan.select(*schema.names)

    def _latest_pos_version(
        self, name: str, scan: ibis.Table, *, restricted: bool = False
    ) -> ibis.Table:
        """POS rows of the latest received version of each (tenant, store, transaction).

        The winner is the transaction row with the latest ``received_at`` (null = oldest), then
        the smallest ``source_object_id`` as for other raw tables. It is chosen over every
        date, so a correction that moves a receipt to another business date replaces it too.
        Lines are taken only from the winning version's object, so a corrected receipt with
        fewer lines loses the rest.

        ``restricted`` (``scan`` holds some dates only): versions are ranked only for the
        transactions ``scan`` holds — still over every date, so the result is the same, but
        a run over a few days no longer ranks the whole history.
        """
        tx = self._scan("raw_pos_transactions", RAW_TABLES["raw_pos_transactions"])
        if restricted:
            keys = scan.select(*_POS_TX_KEY).distinct()
            tx = tx.semi_join(keys, list(_POS_TX_KEY))
        order = [
            ibis.desc(tx.received_at.isnull().ifelse(0, 1)),
            ibis.desc(tx.received_at),
            tx.source_object_id,
            tx[_FILE],
            tx[_ROW],
        ]
        window = ibis.window(group_by=list(_POS_TX_KEY), order_by=order)
        winners = tx.mutate(_rank=ibis.row_number().over(window)).filter(ibis._["_rank"] == 0)
        if name == "raw_pos_transactions":
            won = winners.select(_win_file=winners[_FILE], _win_row=winners[_ROW])
            return scan.semi_join(won, [scan[_FILE] == won._win_file, scan[_ROW] == won._win_row])
        won = winners.select(
            *[winners[k].name(f"_win_{k}") for k in (*_POS_TX_KEY, "source_object_id")]
        )
        lines = scan.semi_join(
            won, [scan[k] == won[f"_win_{k}"] for k in (*_POS_TX_KEY, "source_object_id")]
        )
        order = [lines[_FILE], lines[_ROW]]
        rank = ibis.row_number().over(
            ibis.window(group_by=list(NATURAL_KEYS[name]), order_by=order)
        )
        return lines.mutate(_rank=rank).filter(ibis._["_rank"] == 0)

    # -- internals --------------------------------------------------------------------------
    def _has_files(self, name: str) -> bool:
        """Whether table ``name`` has a Parquet part (engines refuse to scan no file)."""
        fs = self.lake.filesystem
        pattern = self.lake.path(table_prefix(name)) + _PART_GLOB
        return bool(fs.glob(fs._strip_protocol(pattern)))

    @staticmethod
    def _schema(name: str) -> pa.Schema:
        try:
            return TABLES[name]
        except KeyError:
            raise NotFound(
                f"no warehouse table {name!r} (known: {', '.join(sorted(TABLES))})"
            ) from None


class Warehouse(BaseWarehouse):
    """The DuckDB warehouse: each table a DuckDB view over its Parquet dataset.

    It holds an in-memory DuckDB unless ``database`` names a file.
    """

    engine = "duckdb"

    def __init__(
        self, lake: Lake, backend: str = "duckdb", *, database: str | Path = ":memory:"
    ) -> None:
        if backend not in SUPPORTED_BACKENDS:
            raise ConfigError(
                f"warehouse backend {backend!r} is not supported by this class (choose from "
                f"{', '.join(SUPPORTED_BACKENDS)}); for Spark set TENPO_ENGINE=spark and use "
                "open_warehouse()"
            )
        super().__init__(lake)
        self.backend = backend
        self._con: DuckDBBackend = ibis.duckdb.connect(str(database))
        # Instants come back in UTC whatever the machine's zone (TIMESTAMPTZ follows the session).
        self._con.raw_sql("SET TimeZone = 'UTC'")
        if not isinstance(lake.filesystem, LocalFileSystem):
            # Remote lakes (s3://, gs://): DuckDB reads through the lake's own fsspec filesystem.
            self._con.register_filesystem(lake.filesystem)
        self._views: dict[str, bool] = {}

    @property
    def con(self) -> DuckDBBackend:
        """The Ibis DuckDB backend (for expressions spanning several tables)."""
        return self._con

    def __enter__(self) -> Warehouse:
        return self

    def sql(self, query: str) -> pa.Table:
        """Run a SELECT over the tables (by name, raw ones deduplicated) into Arrow."""
        for name in TABLES:
            self._con.create_view(name, self.table(name), overwrite=True)
        # Straight to DuckDB: Ibis 12's ``con.sql`` calls a cursor method DuckDB 2 removed.
        try:
            relation = self._con.con.sql(query)
        except duckdb.Error as exc:
            raise BadInput(f"warehouse query failed: {exc}") from exc
        if relation is None:
            raise BadInput("warehouse.sql() runs queries only; the statement returned no rows")
        result: pa.Table = relation.to_arrow_table()
        return result

    def to_arrow(self, expr: ibis.Table) -> pa.Table:
        """Execute an expression of this warehouse into an Arrow table."""
        try:
            result: pa.Table = self._con.to_pyarrow(expr)
        except duckdb.Error as exc:
            # Typically an unreadable Parquet part: the message names the file.
            raise LakeError(f"warehouse read failed: {exc}") from exc
        return result

    def close(self) -> None:
        """Release the DuckDB connection."""
        self._con.disconnect()

    def _glob(self, name: str) -> str:
        return self.lake.path(table_prefix(name)) + _PART_GLOB

    def _scan(self, name: str, schema: pa.Schema) -> ibis.Table:
        """The (re)created view ``_scan_{name}``: typed columns plus partition and position."""
        view = f"_scan_{name}"
        has_files = self._has_files(name)
        if self._views.get(view) is not has_files:
            try:
                body = self._scan_sql(name, schema, has_files)
                self._con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {_quote(view)} AS {body}")
            except duckdb.Error as exc:
                raise LakeError(f"cannot read table {name}: {exc}") from exc
            self._views[view] = has_files
            log.debug("warehouse view %s over %s (files: %s)", view, name, has_files)
        return self._con.table(view)

    def _scan_sql(self, name: str, schema: pa.Schema, has_files: bool) -> str:
        extra = {_TENANT: "VARCHAR", _DATE: "DATE", _FILE: "VARCHAR", _ROW: "BIGINT"}
        if not has_files:
            cols = [f"CAST(NULL AS {duckdb_type(f.type)}) AS {_quote(f.name)}" for f in schema]
            cols += [f"CAST(NULL AS {t}) AS {_quote(c)}" for c, t in extra.items()]
            return f"SELECT {', '.join(cols)} WHERE false"
        source = (
            f"read_parquet({_literal(self._glob(name))}, hive_partitioning = true, "
            "hive_types = {'tenant': VARCHAR, 'date': DATE}, union_by_name = true, "
            "filename = true, file_row_number = true)"
        )
        present = {
            str(row[0]) for row in self._con.raw_sql(f"DESCRIBE SELECT * FROM {source}").fetchall()
        }
        cols = []
        for f in schema:
            typ = duckdb_type(f.type)
            value = _quote(f.name) if f.name in present else "NULL"
            cols.append(f"CAST({value} AS {typ}) AS {_quote(f.name)}")
        cols += [
            f'"tenant" AS {_TENANT}',
            f'"date" AS {_DATE}',
            f'"filename" AS {_FILE}',
            f'"file_row_number" AS {_ROW}',
        ]
        return f"SELECT {', '.join(cols)} FROM {source}"


def open_warehouse(
    settings: Settings, *, database: str | Path = ":memory:", engine: str | None = None
) -> BaseWarehouse:
    """The warehouse over the settings' lake on the configured engine (``settings.engine``).

    The one place an engine is chosen: the Dagster resource, the CLI and the demo all call
    this. ``engine`` overrides the setting; ``database`` is DuckDB's file (default memory).
    ``ConfigError`` for an unknown engine or when Spark is wanted but not installed.
    """
    chosen = engine or settings.engine
    lake = open_lake(settings.lake_root)
    if chosen == "duckdb":
        return Warehouse(lake, database=database)
    if chosen == "spark":
        from tenpo.warehouse.spark import SparkWarehouse, spark_session

        return SparkWarehouse(lake, spark_session(settings))
    raise ConfigError(f"unknown warehouse engine {chosen!r} (choose duckdb or spark)")
