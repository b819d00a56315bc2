"""A DuckDB file of views over the lake, for analysts' ad-hoc SQL (``tenpo warehouse views``).

Every raw and mart table of the catalog becomes a view of the same name, with the contract
schema and raw tables deduplicated exactly as the jobs read them. The views read the Parquet
files at query time, so new data shows up without rebuilding the file; re-run the command only
after a table got its first file (a table without any file is an empty view of the right
schema) or after tenpo's schemas changed. Open the file with the ``duckdb`` CLI, DBeaver, or
``duckdb.connect(path, read_only=True)`` from Python.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import ibis
from fsspec.implementations.local import LocalFileSystem

from tenpo.core.errors import ConfigError, LakeError
from tenpo.warehouse.catalog import TABLES, Warehouse

__all__ = ["write_views"]

log = logging.getLogger(__name__)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def write_views(warehouse: Warehouse, path: str | Path) -> list[str]:
    """Create (or replace) one view per warehouse table in the DuckDB file ``path``.

    Returns the view names. ``ConfigError`` for a remote lake (the file would need the
    lake's credentials at query time), ``LakeError`` when DuckDB refuses a view.
    """
    if not isinstance(warehouse.lake.filesystem, LocalFileSystem):
        raise ConfigError(
            "warehouse views need a local lake; for S3/GCS query through the Warehouse API "
            "or create DuckDB secrets and views by hand"
        )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(target))
    try:
        # Scans first: a table's view may read other scans (POS versions read transactions).
        for name, schema in TABLES.items():
            body = warehouse._scan_sql(name, schema, warehouse._has_files(name))
            con.execute(f"CREATE OR REPLACE VIEW {_quote('_scan_' + name)} AS {body}")
        for name in TABLES:
            sql = ibis.to_sql(warehouse.table(name), dialect="duckdb")
            con.execute(f"CREATE OR REPLACE VIEW {_quote(name)} AS {sql}")
    except duckdb.Error as exc:
        raise LakeError(f"cannot create warehouse views in {target}: {exc}") from exc
    finally:
        con.close()
    log.info("wrote %d warehouse views to %s", len(TABLES), target)
    return list(TABLES)
