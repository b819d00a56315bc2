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

import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import ibis
import ibis.expr.operations as ops
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem
from ibis.backends.duckdb import Backend as DuckDBBackend

from tenpo.core.errors import BadInput, ConfigError, LakeError, NotFound
from tenpo.core.settings import Settings
from tenpo.lake.base import FsspecLake, Lake, open_lake
from tenpo.lake.keys import table_prefix
from tenpo.warehouse import prepared
from tenpo.warehouse.duckdb_ibis import connect as connect_duckdb
from tenpo.warehouse.listed import ListedParts
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
PART_TENANT, PART_DATE, FILE_COLUMN, ROW_COLUMN = "_part_tenant", "_part_date", "_file", "_row"
_SOURCE = "source_object_id"
_VERSION_COLUMNS = (*_POS_TX_KEY, "received_at", _SOURCE, FILE_COLUMN, ROW_COLUMN)
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


def _version_order(tx: ibis.Table) -> list[Any]:
    """The order of a POS transaction's versions, winner first: latest ``received_at`` (null =
    oldest), then smallest ``source_object_id``, file and row."""
    return [
        ibis.desc(tx.received_at.isnull().ifelse(0, 1)),
        ibis.desc(tx.received_at),
        tx.source_object_id,
        tx[FILE_COLUMN],
        tx[ROW_COLUMN],
    ]


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

    def run_job(
        self,
        job: Callable[..., ibis.Table],
        *args: Any,
        order_by: Sequence[str] = (),
        **params: Any,
    ) -> pa.Table:
        """The rows of ``job(*args, **params)`` (a KPI job: Ibis tables in, an expression
        out), ordered by ``order_by``, as Arrow. The base builds and runs the expression; an
        engine may compile each job shape once (the DuckDB warehouse does)."""
        expr = job(*args, **params)
        return self.to_arrow(expr.order_by(list(order_by)) if order_by else expr)

    @abstractmethod
    def sql(self, query: str) -> pa.Table:
        """Run a SELECT (the engine's SQL dialect) over the tables, by name, into Arrow."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine's resources held by this warehouse."""

    def materialized(self, expr: ibis.Table) -> ibis.Table:
        """``expr`` computed once for several queries of this warehouse (the same rows).

        For a read that a unit of work queries more than once (a mart and its checks), so the
        reading rules (deduplication, POS versions) run once. The base keeps the expression
        as it is (each query recomputes it); an engine with cheap temporary tables overrides
        this. The rows live until the warehouse is closed.
        """
        return expr

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
        are never opened; the DuckDB warehouse does not even list them, so a read costs the
        dates it reads, not the table's history). ``NotFound`` for a name that is not a table
        of the contract.
        """
        schema = self._schema(name)
        wanted = None if dates is None else sorted(set(dates))
        scan = self._scan_dates(name, schema, wanted)
        keys = NATURAL_KEYS.get(name)
        if name in _POS_VERSIONED:
            scan = self._latest_pos_version(name, scan, wanted)
        elif keys is not None:
            scan = self._first_per_key(scan, keys, (_SOURCE, FILE_COLUMN, ROW_COLUMN))
        event_keys = EVENT_KEYS.get(name)
        if event_keys is not None:
            # A device's (device_id, seq) counts once: keep the rows of its first object only.
            scan = self._first_object_per_event(scan, event_keys)
        return scan.select(*schema.names)

    def raw_scan(self, name: str, *, dates: Iterable[date] | None = None) -> ibis.Table:
        """Every row of table ``name`` as stored (of ``dates`` only when given): contract
        columns, no deduplication nor version resolution. For reads that only ask which keys
        exist (e.g. which devices reported), where that costs less than :meth:`table`."""
        schema = self._schema(name)
        wanted = None if dates is None else sorted(set(dates))
        return self._scan_dates(name, schema, wanted).select(*schema.names)

    def partition_dates(self, name: str) -> list[date]:
        """The business dates that hold a partition of table ``name`` (any tenant), sorted;
        from the folder names, no file is opened."""
        self._schema(name)
        found: set[date] = set()
        for tenant in self._tenants(name):
            for leaf in self._folders(table_prefix(name, tenant)):
                if leaf.startswith("date="):
                    try:
                        found.add(date.fromisoformat(leaf.removeprefix("date=")))
                    except ValueError:
                        continue
        return sorted(found)

    def _latest_pos_version(
        self, name: str, scan: ibis.Table, wanted: list[date] | None
    ) -> ibis.Table:
        """POS rows of the latest received version of each (tenant, store, transaction).

        The winner is the transaction row with the latest ``received_at`` (null = oldest), then
        the smallest ``source_object_id`` as for other raw tables. It is chosen over every
        date, so a correction that moves a receipt to another business date replaces it too.
        Lines are taken only from the winning version's object, so a corrected receipt with
        fewer lines loses the rest.

        ``wanted`` (``scan`` holds those dates only): versions are ranked only for the
        transactions ``scan`` holds — still over every date (:meth:`_versions_of`), so the
        result is the same, but a run over a few days no longer ranks the whole history.
        """
        if wanted is None:
            tx = self._scan_dates("raw_pos_transactions", RAW_TABLES["raw_pos_transactions"], None)
        else:
            tx = self._versions_of(scan.select(*_POS_TX_KEY).distinct(), wanted)
        window = ibis.window(group_by=list(_POS_TX_KEY), order_by=_version_order(tx))
        winners = tx.mutate(_rank=ibis.row_number().over(window)).filter(ibis._["_rank"] == 0)
        if name == "raw_pos_transactions":
            won = winners.select(_win_file=winners[FILE_COLUMN], _win_row=winners[ROW_COLUMN])
            return scan.semi_join(
                won, [scan[FILE_COLUMN] == won._win_file, scan[ROW_COLUMN] == won._win_row]
            )
        won = winners.select(
            *[winners[k].name(f"_win_{k}") for k in (*_POS_TX_KEY, "source_object_id")]
        )
        lines = scan.semi_join(
            won, [scan[k] == won[f"_win_{k}"] for k in (*_POS_TX_KEY, "source_object_id")]
        )
        return self._first_per_key(lines, NATURAL_KEYS[name], (FILE_COLUMN, ROW_COLUMN))

    # -- reading rules an engine may run its own (faster) way; same rows -------------------
    def _scan_dates(self, name: str, schema: pa.Schema, dates: list[date] | None) -> ibis.Table:
        """The scan of ``name`` restricted to ``dates`` (every date when None)."""
        scan = self._scan(name, schema)
        if dates is None:
            return scan
        return scan.filter(scan[PART_DATE].isin(dates)) if dates else scan.limit(0)

    def _versions_of(self, keys: ibis.Table, wanted: list[date]) -> ibis.Table:
        """Every version (any date) of the POS transactions ``keys`` (tenant, store,
        transaction) found on ``wanted``: transaction rows with at least the key,
        ``received_at``, ``source_object_id``, ``_file`` and ``_row`` columns."""
        tx = self._scan("raw_pos_transactions", RAW_TABLES["raw_pos_transactions"])
        return tx.semi_join(keys, list(_POS_TX_KEY))

    def _first_per_key(
        self, scan: ibis.Table, keys: Sequence[str], order: Sequence[str]
    ) -> ibis.Table:
        """The first row (by columns ``order``) of each group of equal ``keys``."""
        rank = ibis.row_number().over(
            ibis.window(group_by=list(keys), order_by=[scan[c] for c in order])
        )
        return scan.mutate(_rank=rank).filter(ibis._["_rank"] == 0).drop("_rank")

    def _first_object_per_event(self, scan: ibis.Table, event_keys: Sequence[str]) -> ibis.Table:
        """Rows whose event key is null, plus those of the first object (smallest
        ``source_object_id``) holding each event key."""
        # A column first, then the filter: Ibis's PySpark compiler mis-scopes a window
        # function inside a filter predicate.
        first = scan.source_object_id.min().over(ibis.window(group_by=list(event_keys)))
        scan = scan.mutate(_first=first)
        scan = scan.filter(scan.seq.isnull() | (scan.source_object_id == scan._first))
        return scan.drop("_first")

    # -- internals --------------------------------------------------------------------------
    def _has_files(self, name: str) -> bool:
        """Whether table ``name`` has a Parquet part (engines refuse to scan no file)."""
        fs = self.lake.filesystem
        pattern = self.lake.path(table_prefix(name)) + _PART_GLOB
        return bool(fs.glob(fs._strip_protocol(pattern)))

    def _folders(self, prefix: str) -> list[str]:
        """Names of the folders right under lake key ``prefix`` (none when it is missing)."""
        fs = self.lake.filesystem
        try:
            entries = fs.ls(fs._strip_protocol(self.lake.path(prefix)), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def _tenants(self, name: str) -> list[str]:
        return [
            leaf.removeprefix("tenant=")
            for leaf in self._folders(table_prefix(name))
            if leaf.startswith("tenant=")
        ]

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

    It holds an in-memory DuckDB unless ``database`` names a file; ``memory_limit`` (e.g.
    ``"1GB"``) bounds its queries' memory, spilling to ``temp_directory`` past it.
    """

    engine = "duckdb"

    def __init__(
        self,
        lake: Lake,
        backend: str = "duckdb",
        *,
        database: str | Path = ":memory:",
        memory_limit: str | None = None,
        temp_directory: str | Path | None = None,
        template_directory: str | Path | None = None,
    ) -> None:
        if backend not in SUPPORTED_BACKENDS:
            raise ConfigError(
                f"warehouse backend {backend!r} is not supported by this class (choose from "
                f"{', '.join(SUPPORTED_BACKENDS)}); for Spark set TENPO_ENGINE=spark and use "
                "open_warehouse()"
            )
        super().__init__(lake)
        self.backend = backend
        # Session zone UTC (TIMESTAMPTZ follows the session) and EPOCH(ts) for instants.
        self._con: DuckDBBackend = connect_duckdb(database)
        # Parts are immutable: a footer read once serves every later query of this warehouse.
        self._con.raw_sql("SET parquet_metadata_cache = true")
        if memory_limit is not None:
            # Bounds the queries' memory: past it, DuckDB spills to temp_directory.
            self._con.raw_sql(f"SET memory_limit = {_literal(memory_limit)}")
        if temp_directory is not None:
            # A literal, quotes doubled: a data dir named with a quote must not break it.
            self._con.raw_sql(f"SET temp_directory = {_literal(str(Path(temp_directory)))}")
        self._remote: ListedParts | None = None
        """Remote lakes (s3://, gs://): the lake's fsspec filesystem DuckDB reads through,
        with the parts this warehouse listed answered from their listing (no HEAD each)."""
        if not isinstance(lake.filesystem, LocalFileSystem):
            self._remote = ListedParts(lake.filesystem)
            self._con.register_filesystem(self._remote)
        self._views: dict[str, bool] = {}
        """Views and version tables made, by name → whether they hold files (rows)."""
        self._file_views: set[str] = set()
        """The views over a fixed list of parts (:meth:`_file_view`): their rows never change."""
        self._templates = (
            None if template_directory is None else prepared.TemplateStore(template_directory)
        )
        """Where :meth:`run_job` keeps compiled job templates for later processes (None: this
        process only)."""

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

    def run_job(
        self,
        job: Callable[..., ibis.Table],
        *args: Any,
        order_by: Sequence[str] = (),
        **params: Any,
    ) -> pa.Table:
        """The rows of ``job(*args, **params)`` ordered by ``order_by``, its SQL compiled once
        per shape of the job (``tenpo.warehouse.prepared``; kept for later processes when the
        warehouse has a template directory)."""
        try:
            return prepared.run_job(
                self._con, job, *args, order_by=order_by, store=self._templates, **params
            )
        except duckdb.Error as exc:
            raise LakeError(f"warehouse read failed: {exc}") from exc

    def materialized(self, expr: ibis.Table) -> ibis.Table:
        """``expr`` as a temporary DuckDB table, filled once (dropped when the warehouse closes);
        ``expr`` itself when it only picks columns of a scan of fixed parts.

        A raw table read without repeated keys is such a scan (:meth:`_computed_once`): its
        rows are those of immutable files, the same in every query, so there is nothing to
        compute once, and copying them would cost more than reading them again. Queries of
        the scan also keep the parts' dictionary-encoded strings, which DuckDB groups and
        joins on at half the cost of a temp table's flat ones (the daily KPI job).
        """
        if self._plain_scan(expr):
            return expr
        try:
            cached: ibis.Table = expr.cache()
        except duckdb.Error as exc:
            raise LakeError(f"warehouse read failed: {exc}") from exc
        return cached

    def close(self) -> None:
        """Release the DuckDB connection.

        Cached tables (:meth:`materialized`) are temporary: they go with the connection. Their
        ibis finalizers are detached first, or one that the garbage collector runs after the
        disconnect raises "Connection already closed" (an unraisable error, when the GC runs).
        """
        entries = getattr(self._con, "_cache_name_to_entry", None)
        if isinstance(entries, dict):
            for entry in list(entries.values()):
                entry.finalizer.detach()
            entries.clear()
            by_op = getattr(self._con, "_cache_op_to_entry", None)
            if isinstance(by_op, dict):
                by_op.clear()
        self._con.disconnect()

    def _glob(self, name: str) -> str:
        return self.lake.path(table_prefix(name)) + _PART_GLOB

    def _has_files(self, name: str) -> bool:
        if self._remote is None:
            return super()._has_files(name)
        return bool(self._remote.glob(self._glob(name)))  # one listing, parts remembered

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

    def _scan_dates(self, name: str, schema: pa.Schema, dates: list[date] | None) -> ibis.Table:
        """Every date: the glob view :meth:`_scan`. Some dates: a view over exactly the parts
        of those dates, listed folder by folder (re-listed on every call, so new parts are
        seen; a view per set of files)."""
        if dates is None:
            return self._scan(name, schema)
        return self._con.table(self._file_view(name, schema, self._files(name, dates)))

    def _files(self, name: str, dates: list[date] | None) -> list[str]:
        """Paths of the table's Parquet parts, of ``dates`` only when given (sorted)."""
        prefixes = (
            [table_prefix(name)]
            if dates is None
            else [
                table_prefix(name, tenant, day) for tenant in self._tenants(name) for day in dates
            ]
        )
        keys: list[str] = []
        for prefix in prefixes:
            if self._remote is not None and isinstance(self.lake, FsspecLake):
                listed = self.lake.list_info(prefix)
                self._remote.remember({self.lake.path(k): info for k, info in listed.items()})
                keys += listed
            else:
                keys += self.lake.list(prefix)
        return sorted(self.lake.path(k) for k in keys if k.endswith(".parquet"))

    def _file_view(self, name: str, schema: pa.Schema, files: list[str]) -> str:
        """The name of a temp view reading exactly ``files`` (made once per set of files)."""
        view = f"_scan_{name}_{_digest(files)}" if files else f"_scan_{name}_empty"
        if view not in self._views:
            try:
                body = self._scan_sql(name, schema, bool(files), files=files)
                self._con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {_quote(view)} AS {body}")
            except duckdb.Error as exc:
                raise LakeError(f"cannot read table {name}: {exc}") from exc
            self._views[view] = bool(files)
            self._file_views.add(view)
            log.debug("warehouse view %s over %s (%d files)", view, name, len(files))
        return view

    def _versions_of(self, keys: ibis.Table, wanted: list[date]) -> ibis.Table:
        """The versions on ``wanted`` plus those of other dates that could beat one of them
        (:meth:`_versions_elsewhere`), only the columns the ranking needs."""
        tx_schema = RAW_TABLES["raw_pos_transactions"]
        here = self._scan_dates("raw_pos_transactions", tx_schema, wanted)
        here = here.select(*_VERSION_COLUMNS).semi_join(keys, list(_POS_TX_KEY))
        elsewhere = self._versions_elsewhere(wanted)
        if elsewhere is None:
            return here
        return ibis.union(here, elsewhere.semi_join(keys, list(_POS_TX_KEY)))

    def _versions_elsewhere(self, wanted: list[date]) -> ibis.Table | None:
        """Transaction versions (key and version columns) on dates other than ``wanted`` that
        could beat a version of ``wanted``: received at or after the earliest row of
        ``wanted`` (every row when one of those has no ``received_at``, which loses to any
        dated version but may win a tie). None when there is none. A temp table, made once
        per warehouse and set of files: the one read of the POS history, key columns only."""
        tx_schema = RAW_TABLES["raw_pos_transactions"]
        here_files = self._files("raw_pos_transactions", wanted)
        other_files = sorted(set(self._files("raw_pos_transactions", None)) - set(here_files))
        if not other_files:
            return None
        memo = "_versions_" + _digest([*here_files, "|", *other_files])
        if memo not in self._views:
            here = self._file_view("raw_pos_transactions", tx_schema, here_files)
            other = self._file_view("raw_pos_transactions", tx_schema, other_files)
            cols = ", ".join(_quote(c) for c in _VERSION_COLUMNS)
            try:
                ((earliest, undated),) = self._con.con.execute(
                    f"SELECT min(received_at), count(*) - count(received_at) FROM {_quote(here)}"
                ).fetchall()
            except duckdb.Error as exc:
                raise LakeError(f"cannot read table raw_pos_transactions: {exc}") from exc
            where = "" if undated or earliest is None else " WHERE received_at >= ?"
            self._fill_temp_table(
                memo,
                f"SELECT {cols} FROM {_quote(other)}{where}",
                [earliest] if where else [],
                what="raw_pos_transactions",
            )
        return self._con.table(memo) if self._views[memo] else None

    def _fill_temp_table(self, memo: str, select: str, params: list[Any], *, what: str) -> None:
        """Create temp table ``memo`` from ``select`` and remember (``_views``) whether it
        holds any row; a DuckDB error is a ``LakeError`` naming ``what`` was read."""
        con = self._con.con
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {_quote(memo)} AS {select}", params)
            ((found,),) = con.execute(f"SELECT count(*) FROM {_quote(memo)}").fetchall()
        except duckdb.Error as exc:
            raise LakeError(f"cannot read table {what}: {exc}") from exc
        self._views[memo] = bool(found)

    def _first_per_key(
        self, scan: ibis.Table, keys: Sequence[str], order: Sequence[str]
    ) -> ibis.Table:
        """Same rows as the window of the base class, 4x cheaper in DuckDB: rows whose key
        is unique (nearly all) pass through a hash anti-join; only the groups holding
        duplicates are ranked by the window."""
        grouped = scan.group_by(list(keys)).aggregate(_n=ibis._.count())
        dups = grouped.filter(grouped._n > 1).select(*[grouped[k].name(f"_d_{k}") for k in keys])
        small = self._computed_once(scan, dups, "dups")
        if small is None:
            return scan  # no key repeats: every row is the first of its key
        dups = small
        # IS NOT DISTINCT FROM: a null key part groups with the other nulls, as in the window.
        match = [scan[k].identical_to(dups[f"_d_{k}"]) for k in keys]
        unique = scan.anti_join(dups, match)
        repeated = scan.semi_join(dups, [scan[k].identical_to(dups[f"_d_{k}"]) for k in keys])
        return ibis.union(unique, super()._first_per_key(repeated, keys, order))

    def _latest_pos_version(
        self, name: str, scan: ibis.Table, wanted: list[date] | None
    ) -> ibis.Table:
        """Same rows as the base class; for transactions ~4x cheaper in DuckDB. The base ranks
        every version of every transaction read (a window over a million receipts a day,
        partitioned by three string keys: ~1 s of a daily run). Here only the keys held by more
        than one version are ranked (nearly none: a re-sent or corrected receipt); any other
        row is its transaction's only version and wins outright. So the read is the scan less
        the ranked losers, a hash anti-join on (file, row) that passes every row when there
        are none. Lines keep the base's ranking: their winners also drop lines that have no
        transaction version at all."""
        if name != "raw_pos_transactions":
            return super()._latest_pos_version(name, scan, wanted)
        # Every version that can beat a row of ``scan``: its own rows and, for some dates, the
        # later-received versions of other dates (keys ``scan`` lacks rank among themselves,
        # which loses nothing: they match no row of it).
        tx = scan.select(*_VERSION_COLUMNS)
        elsewhere = None if wanted is None else self._versions_elsewhere(wanted)
        if elsewhere is not None:
            tx = ibis.union(tx, elsewhere)
        counted = tx.group_by(list(_POS_TX_KEY)).aggregate(_n=ibis._.count())
        dups = counted.filter(counted._n > 1).select(
            *[counted[k].name(f"_d_{k}") for k in _POS_TX_KEY]
        )
        # IS NOT DISTINCT FROM: a null key part groups with the other nulls, as in the window.
        contested = tx.semi_join(dups, [tx[k].identical_to(dups[f"_d_{k}"]) for k in _POS_TX_KEY])
        window = ibis.window(group_by=list(_POS_TX_KEY), order_by=_version_order(contested))
        ranked = contested.mutate(_rank=ibis.row_number().over(window))
        losers = ranked.filter(ranked._rank > 0).select(
            _lose_file=ranked[FILE_COLUMN], _lose_row=ranked[ROW_COLUMN]
        )
        depends = "" if elsewhere is None else str(elsewhere.get_name())
        small = self._computed_once(scan, losers, "losers", depends)
        if small is None:
            return scan  # every row is its transaction's latest version
        return scan.anti_join(
            small, [scan[FILE_COLUMN] == small._lose_file, scan[ROW_COLUMN] == small._lose_row]
        )

    def _first_object_per_event(self, scan: ibis.Table, event_keys: Sequence[str]) -> ibis.Table:
        """Same rows as the window of the base class, by hash joins: event keys sent by one
        object only (or null) pass; of the others, the first object's rows."""
        spread = scan.group_by(list(event_keys)).aggregate(
            _lo=scan.source_object_id.min(), _hi=scan.source_object_id.max()
        )
        spread = spread.filter(spread._lo != spread._hi)
        sp = spread.select(*[spread[k].name(f"_e_{k}") for k in event_keys], _e_lo=spread._lo)
        small = self._computed_once(scan, sp, "spread")
        if small is None:
            return scan  # no event key sent by two objects
        sp = small
        single = scan.anti_join(sp, [scan[k] == sp[f"_e_{k}"] for k in event_keys])
        first = scan.semi_join(
            sp,
            [*[scan[k] == sp[f"_e_{k}"] for k in event_keys], scan.source_object_id == sp._e_lo],
        )
        return ibis.union(single, first)

    def _plain_scan(self, expr: ibis.Table) -> bool:
        """Whether ``expr`` only selects (or renames) columns of a view over fixed parts."""
        op = expr.op()
        while isinstance(op, ops.Project):
            parent = op.parent
            if not all(isinstance(v, ops.Field) and v.rel == parent for v in op.values.values()):
                return False
            op = parent
        return isinstance(op, ops.DatabaseTable) and op.name in self._file_views

    def _computed_once(
        self, scan: ibis.Table, small: ibis.Table, tag: str, *depends: str
    ) -> ibis.Table | None:
        """``small`` (the few repeated keys of ``scan``) as a temp table, computed once per
        warehouse, or None when it is empty; ``small`` itself unless ``scan`` is a view over a
        fixed list of parts (the glob view sees parts added later; a derived table has no name).

        The reading rules of a raw table join its scan twice to its repeated keys (an anti
        join for the rest, a semi join for the rows to rank). Left to DuckDB, each join
        computes those keys again: two high-cardinality GROUP BYs over every row per rule
        (raw_iot_counts has two rules), ~2 s CPU of a day of 1,000 stores. Computed once, and
        nearly always empty, the rule is then the scan itself: no join, and the scan's
        dictionary-encoded strings reach the query that reads it. ``depends`` names the
        other inputs of ``small`` (the temp table of other dates' POS versions).
        """
        op = scan.op()
        view = op.name if isinstance(op, ops.DatabaseTable) else None
        if view is None or view not in self._file_views:
            return small
        memo = f"_{tag}_{_digest([view, *depends, *small.columns])}"
        if memo not in self._views:
            self._fill_temp_table(memo, str(self._con.compile(small)), [], what=f"behind {view}")
        return self._con.table(memo) if self._views[memo] else None

    def _scan_sql(
        self, name: str, schema: pa.Schema, has_files: bool, *, files: list[str] | None = None
    ) -> str:
        """The typed scan's SELECT over the table's glob (read at query time), or over
        exactly ``files``; an empty typed relation without files."""
        extra = {
            PART_TENANT: "VARCHAR",
            PART_DATE: "DATE",
            FILE_COLUMN: "VARCHAR",
            ROW_COLUMN: "BIGINT",
        }
        if not has_files:
            cols = [f"CAST(NULL AS {duckdb_type(f.type)}) AS {_quote(f.name)}" for f in schema]
            cols += [f"CAST(NULL AS {t}) AS {_quote(c)}" for c, t in extra.items()]
            return f"SELECT {', '.join(cols)} WHERE false"
        paths = (
            "[" + ", ".join(_literal(f) for f in files) + "]"
            if files
            else _literal(self._glob(name))
        )
        source = (
            f"read_parquet({paths}, hive_partitioning = true, "
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
            f'"tenant" AS {PART_TENANT}',
            f'"date" AS {PART_DATE}',
            f'"filename" AS {FILE_COLUMN}',
            f'"file_row_number" AS {ROW_COLUMN}',
        ]
        return f"SELECT {', '.join(cols)} FROM {source}"


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


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
        limit = settings.duckdb_memory_limit
        spill = Path(settings.data_dir) / "duckdb_tmp" if limit is not None else None
        return Warehouse(
            lake,
            database=database,
            memory_limit=limit,
            temp_directory=spill,
            template_directory=Path(settings.data_dir) / "job_sql",
        )
    if chosen == "spark":
        from tenpo.warehouse.spark import SparkWarehouse, spark_session

        return SparkWarehouse(lake, spark_session(settings))
    raise ConfigError(f"unknown warehouse engine {chosen!r} (choose duckdb or spark)")
