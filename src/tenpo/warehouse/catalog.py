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
from collections.abc import Iterable, Sequence
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

__all__ = ["TABLES", "Warehouse", "duckdb_type", "open_warehouse"]

log = logging.getLogger(__name__)

TABLES: dict[str, pa.Schema] = {**RAW_TABLES, **MART_TABLES}
"""Every table the warehouse exposes, with its contract schema."""

SUPPORTED_BACKENDS = ("duckdb",)

# POS tables read as "latest received version per transaction" instead of by natural key.
_POS_VERSIONED = ("raw_pos_transactions", "raw_pos_lines")
_POS_TX_KEY = ("tenant_id", "store_id", "transaction_id")

# Internal columns of the scan views: partition keys and the position used to order duplicates.
_TENANT, _DATE, _FILE, _ROW = "_part_tenant", "_part_date", "_file", "_row"


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


class Warehouse:
    """Ibis connection over the lake with every raw and mart table exposed by name.

    Build one per unit of work (a job run, a CLI command) and close it; it holds an
    in-memory DuckDB unless ``database`` names a file.
    """

    def __init__(
        self, lake: Lake, backend: str = "duckdb", *, database: str | Path = ":memory:"
    ) -> None:
        if backend not in SUPPORTED_BACKENDS:
            raise ConfigError(
                f"warehouse backend {backend!r} is not supported (choose from "
                f"{', '.join(SUPPORTED_BACKENDS)})"
            )
        self.lake = lake
        self.backend = backend
        self._con: DuckDBBackend = ibis.duckdb.connect(str(database))
        # Instants come back in UTC whatever the machine's zone (TIMESTAMPTZ follows the session).
        self._con.raw_sql("SET TimeZone = 'UTC'")
        # Parts are immutable: a footer read once serves every later query of this warehouse.
        self._con.raw_sql("SET parquet_metadata_cache = true")
        if not isinstance(lake.filesystem, LocalFileSystem):
            # Remote lakes (s3://, gs://): DuckDB reads through the lake's own fsspec filesystem.
            self._con.register_filesystem(lake.filesystem)
        self._views: dict[str, bool] = {}
        """Temp views (and version tables) created, by name; for a version table, whether it
        holds rows."""
        self.live_views = False
        """Reads of every date go through glob views read at query time (see ``_scan``)."""

    # -- public API -------------------------------------------------------------------------
    @property
    def con(self) -> DuckDBBackend:
        """The Ibis backend (for expressions spanning several tables)."""
        return self._con

    def table(self, name: str, *, dates: Iterable[date] | None = None) -> ibis.Table:
        """Table ``name`` with its contract schema; raw tables deduplicated by natural key.

        ``dates`` restricts the read to those business-date partitions: only their files are
        listed and opened, so a read costs the dates it reads, not the table's history.
        ``NotFound`` for a name that is not a table of the contract.
        """
        schema = self._schema(name)
        wanted = None if dates is None else sorted(set(dates))
        scan = self._scan(name, schema, wanted)
        keys = NATURAL_KEYS.get(name)
        if name in _POS_VERSIONED:
            scan = self._latest_pos_version(name, scan, wanted)
        elif keys is not None:
            scan = _first_per_key(scan, keys, [scan.source_object_id, scan[_FILE], scan[_ROW]])
        event_keys = EVENT_KEYS.get(name)
        if event_keys is not None:
            # A device's (device_id, seq) counts once: keep the rows of its first object only.
            scan = _first_object_per_event(scan, event_keys)
        return scan.select(*schema.names)

    def raw_scan(self, name: str, *, dates: Iterable[date] | None = None) -> ibis.Table:
        """Every row of table ``name`` as stored (of ``dates`` only when given): contract
        columns, no deduplication nor version resolution. For reads that only ask which keys
        exist (e.g. which devices reported), where that costs less than :meth:`table`."""
        schema = self._schema(name)
        wanted = None if dates is None else sorted(set(dates))
        return self._scan(name, schema, wanted).select(*schema.names)

    def partition_dates(self, name: str) -> list[date]:
        """The business dates that hold a partition of table ``name`` (any tenant), sorted;
        from the folder names, no file is opened."""
        self._schema(name)
        fs = self.lake.filesystem
        found: set[date] = set()
        for tenant in self._tenants(name):
            folder = fs._strip_protocol(self.lake.path(table_prefix(name, tenant)))
            try:
                entries = fs.ls(folder, detail=False)
            except FileNotFoundError:
                continue
            for entry in entries:
                leaf = str(entry).rstrip("/").rsplit("/", 1)[-1]
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
        transactions ``scan`` holds. Versions on other dates are looked up by key among the
        rows that could win (received at or after the earliest row of the dates read; every
        row when one of those has no ``received_at``), reading only the key and version
        columns, and once per warehouse for a set of dates.
        """
        tx_schema = RAW_TABLES["raw_pos_transactions"]
        version_cols = (*_POS_TX_KEY, "received_at", "source_object_id", _FILE, _ROW)
        if wanted is None:
            tx = self._scan("raw_pos_transactions", tx_schema, None).select(*version_cols)
        else:
            here = self._scan("raw_pos_transactions", tx_schema, wanted).select(*version_cols)
            keys = scan.select(*_POS_TX_KEY).distinct()
            here = here.semi_join(keys, list(_POS_TX_KEY))
            elsewhere = self._versions_elsewhere(wanted)
            if elsewhere is None:
                tx = here
            else:
                tx = ibis.union(here, elsewhere.semi_join(keys, list(_POS_TX_KEY)))
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
        return _first_per_key(lines, NATURAL_KEYS[name], [lines[_FILE], lines[_ROW]])

    def _versions_elsewhere(self, wanted: list[date]) -> ibis.Table | None:
        """Transaction versions (key and version columns) on dates other than ``wanted`` that
        could beat a version of ``wanted``; None when there is none. A temp table, computed
        once per warehouse and set of dates (and again when the files changed)."""
        tx_schema = RAW_TABLES["raw_pos_transactions"]
        here_files = self._files("raw_pos_transactions", wanted)
        other_files = sorted(set(self._files("raw_pos_transactions", None)) - set(here_files))
        if not other_files:
            return None
        memo = "_versions_" + _digest([*here_files, "|", *other_files])
        if memo in self._views:
            return self._con.table(memo) if self._views[memo] else None
        cols = ", ".join(
            _quote(c) for c in (*_POS_TX_KEY, "received_at", "source_object_id", _FILE, _ROW)
        )
        here = self._file_view("raw_pos_transactions", tx_schema, here_files)
        other = self._file_view("raw_pos_transactions", tx_schema, other_files)
        try:
            ((earliest, nulls),) = self._con.con.execute(
                f"SELECT min(received_at), count(*) - count(received_at) FROM {_quote(here)}"
            ).fetchall()
            # A version received before every row of the dates read cannot beat one of them
            # (unless one has no received_at: then any version may win a tie).
            where = "" if nulls or earliest is None else " WHERE received_at >= ?"
            params = [earliest] if where else []
            self._con.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {_quote(memo)} AS SELECT {cols} "
                f"FROM {_quote(other)}{where}",
                params,
            ).fetchall()
            ((found,),) = self._con.con.execute(f"SELECT count(*) FROM {_quote(memo)}").fetchall()
        except duckdb.Error as exc:
            raise LakeError(f"cannot read table raw_pos_transactions: {exc}") from exc
        self._views[memo] = bool(found)
        return self._con.table(memo) if self._views[memo] else None

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

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _schema(name: str) -> pa.Schema:
        try:
            return TABLES[name]
        except KeyError:
            raise NotFound(
                f"no warehouse table {name!r} (known: {', '.join(sorted(TABLES))})"
            ) from None

    def _glob(self, name: str) -> str:
        return self.lake.path(table_prefix(name)) + "tenant=*/date=*/*.parquet"

    def _has_files(self, name: str) -> bool:
        return bool(self._files(name, None))

    def _files(self, name: str, dates: list[date] | None) -> list[str]:
        """Paths of the table's Parquet parts, of ``dates`` only when given (sorted).

        Only the partition folders of those dates are listed, never the whole table."""
        if dates is None:
            keys = self.lake.list(table_prefix(name))
        else:
            keys = []
            for tenant in self._tenants(name):
                for day in dates:
                    keys += self.lake.list(table_prefix(name, tenant, day))
        return sorted(self.lake.path(k) for k in keys if k.endswith(".parquet"))

    def _tenants(self, name: str) -> list[str]:
        fs = self.lake.filesystem
        folder = fs._strip_protocol(self.lake.path(table_prefix(name)))
        try:
            entries = fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            leaf = str(entry).rstrip("/").rsplit("/", 1)[-1]
            if leaf.startswith("tenant="):
                found.append(leaf.removeprefix("tenant="))
        return sorted(found)

    def _scan(self, name: str, schema: pa.Schema, dates: list[date] | None = None) -> ibis.Table:
        """A temp view over the table's parts (of ``dates`` only when given): typed columns
        plus partition and position. Re-listed on every call, so new parts are seen.

        With ``live_views`` set, a read of every date is the view ``_scan_{name}`` over the
        table's glob, read at query time (the analysts' views file, :mod:`views`)."""
        if self.live_views and dates is None:
            view = f"_scan_{name}"
            if view not in self._views:
                glob = self._glob(name) if self._has_files(name) else None
                try:
                    body = self._scan_sql(name, schema, glob)
                    self._con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {_quote(view)} AS {body}")
                except duckdb.Error as exc:
                    raise LakeError(f"cannot read table {name}: {exc}") from exc
                self._views[view] = True
            return self._con.table(view)
        return self._con.table(self._file_view(name, schema, self._files(name, dates)))

    def _file_view(self, name: str, schema: pa.Schema, files: list[str]) -> str:
        """The name of a temp view reading exactly ``files`` (created once per file set)."""
        view = f"_scan_{name}_{_digest(files)}" if files else f"_scan_{name}_empty"
        if view not in self._views:
            try:
                body = self._scan_sql(name, schema, files or None)
                self._con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {_quote(view)} AS {body}")
            except duckdb.Error as exc:
                raise LakeError(f"cannot read table {name}: {exc}") from exc
            self._views[view] = True
            log.debug("warehouse view %s over %s (%d files)", view, name, len(files))
        return view

    def _scan_sql(self, name: str, schema: pa.Schema, files: list[str] | str | None) -> str:
        """SELECT of the typed scan over ``files`` (a list of paths, or a glob read at query
        time); ``None``: no file, an empty typed relation."""
        extra = {_TENANT: "VARCHAR", _DATE: "DATE", _FILE: "VARCHAR", _ROW: "BIGINT"}
        if not files:
            cols = [f"CAST(NULL AS {duckdb_type(f.type)}) AS {_quote(f.name)}" for f in schema]
            cols += [f"CAST(NULL AS {t}) AS {_quote(c)}" for c, t in extra.items()]
            return f"SELECT {', '.join(cols)} WHERE false"
        paths = (
            _literal(files)
            if isinstance(files, str)
            else "[" + ", ".join(_literal(f) for f in files) + "]"
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
            f'"tenant" AS {_TENANT}',
            f'"date" AS {_DATE}',
            f'"filename" AS {_FILE}',
            f'"file_row_number" AS {_ROW}',
        ]
        return f"SELECT {', '.join(cols)} FROM {source}"


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _first_per_key(scan: ibis.Table, keys: Sequence[str], order: list[ibis.Value]) -> ibis.Table:
    """The first row (by ``order``) of each group of equal ``keys``.

    Rows whose key is unique (nearly all) pass through a hash anti-join; only the groups
    holding duplicates are ranked by a window (a window over every row costs 4x more)."""
    grouped = scan.group_by(list(keys)).aggregate(_n=ibis._.count())
    dups = grouped.filter(grouped._n > 1).select(*[grouped[k].name(f"_d_{k}") for k in keys])
    # IS NOT DISTINCT FROM: a null key part groups with the other nulls, as in the window.
    unique = scan.anti_join(dups, [scan[k].identical_to(dups[f"_d_{k}"]) for k in keys])
    repeated = scan.semi_join(dups, [scan[k].identical_to(dups[f"_d_{k}"]) for k in keys])
    names = [o.get_name() for o in order]
    ranked_order = [repeated[n] for n in names]
    rank = ibis.row_number().over(ibis.window(group_by=list(keys), order_by=ranked_order))
    first = repeated.mutate(_rank=rank).filter(ibis._["_rank"] == 0).drop("_rank")
    return ibis.union(unique, first)


def _first_object_per_event(scan: ibis.Table, event_keys: Sequence[str]) -> ibis.Table:
    """Rows whose event key (device, seq) is null or was sent by one object only, plus the
    rows of the first object (smallest ``source_object_id``) of the others."""
    spread = scan.group_by(list(event_keys)).aggregate(
        _lo=scan.source_object_id.min(), _hi=scan.source_object_id.max()
    )
    spread = spread.filter(spread._lo != spread._hi)
    single = scan.anti_join(spread, list(event_keys))
    sp = spread.select(*[spread[k].name(f"_e_{k}") for k in event_keys], _e_lo=spread._lo)
    first = scan.semi_join(
        sp,
        [*[scan[k] == sp[f"_e_{k}"] for k in event_keys], scan.source_object_id == sp._e_lo],
    )
    return ibis.union(single, first)


def open_warehouse(settings: Settings, *, database: str | Path = ":memory:") -> Warehouse:
    """A DuckDB warehouse over the settings' lake (``database``: DuckDB file, default memory)."""
    return Warehouse(open_lake(settings.lake_root), database=database)
