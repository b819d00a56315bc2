"""Offline conversion of vendor POS files to raw tables (``tenpo pos convert``).

Runs the same Pre-ETL as the streamer, against an in-memory directory built from local
files instead of the control plane: stores from a ``stores.csv`` (``store_id,code`` and
optionally ``timezone``), or, without one, every store code names a store whose id is the code.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tenpo.control.directory import Directory, StaticDirectory, StoreRef
from tenpo.core.errors import BadInput
from tenpo.core.ids import content_id, utcnow
from tenpo.core.preetl import ParseResult, PreEtl, Reject
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos.mapped import VendorMapping
from tenpo.pos.vendors import STORE_META, Vendor, built_in, registry, upload_store
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS

__all__ = [
    "convert_files",
    "master_vendor",
    "offline_directory",
    "reject_json",
    "vendor_for",
    "write_result",
]

log = logging.getLogger(__name__)
_OUTPUT_SCHEMAS = {"raw_pos_transactions": RAW_POS_TRANSACTIONS, "raw_pos_lines": RAW_POS_LINES}


@dataclass
class _AutoStoreDirectory(StaticDirectory):
    """A static directory in which every store code names a store with that id."""

    timezone: str = "Asia/Tokyo"

    def store_by_code(self, tenant_id: str, code: str) -> StoreRef | None:
        store = super().store_by_code(tenant_id, code)
        if store is None and code:
            store = StoreRef(store_id=code, tenant_id=tenant_id, code=code, timezone=self.timezone)
            self.stores.append(store)
        return store


def _read_stores(path: Path, tenant_id: str, timezone: str) -> list[StoreRef]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read stores file {path}: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = {"store_id", "code"} - set(reader.fieldnames or ())
    if missing:
        raise BadInput(f"stores file {path} lacks column(s) {', '.join(sorted(missing))}")
    return [
        StoreRef(
            store_id=row["store_id"].strip(),
            tenant_id=tenant_id,
            code=row["code"].strip(),
            timezone=(row.get("timezone") or "").strip() or timezone,
        )
        for row in reader
    ]


def offline_directory(
    tenant_id: str,
    *,
    master: bytes | None = None,
    stores_csv: Path | None = None,
    timezone: str = "Asia/Tokyo",
    master_of: str | None = None,
) -> tuple[StaticDirectory, list[Reject]]:
    """A directory for offline conversion, and the rejects of the POS ``master`` if any.

    The master is loaded by the master Pre-ETL of vendor ``master_of`` (default: the one
    built-in vendor that has a master upload). Without ``stores_csv`` any store code is
    accepted as a store whose id is the code.
    """
    directory: StaticDirectory
    if stores_csv is not None:
        directory = StaticDirectory(stores=_read_stores(stores_csv, tenant_id, timezone))
    else:
        directory = _AutoStoreDirectory(timezone=timezone)
    rejects: list[Reject] = []
    if master is not None:
        upload = _master_vendor(master_of).master
        assert upload is not None
        event = _event(f"memory://{upload.source}", upload.source, tenant_id, master)
        rejects = upload.pre_etl().parse(event, master, directory).rejects
    return directory, rejects


def _master_vendor(key: str | None) -> Vendor:
    with_master = {k: v for k, v in built_in().items() if v.master is not None}
    if key is None and len(with_master) == 1:
        return next(iter(with_master.values()))
    if key in with_master:
        return with_master[key]
    raise BadInput(
        f"no POS master upload for {key or 'an unnamed vendor'}; vendors with one: "
        f"{', '.join(with_master) or 'none'}"
    )


def vendor_for(vendor: str, mappings: Mapping[str, VendorMapping] | None = None) -> Vendor:
    """The registry entry of ``vendor`` (built-in, plugin or one of ``mappings``); an unknown
    name raises :class:`BadInput` listing the known ones."""
    known = registry(mappings)
    if vendor not in known:
        raise BadInput(f"unknown POS vendor {vendor!r}; expected one of {', '.join(known)}")
    return known[vendor]


def master_vendor(vendor: str, mappings: Mapping[str, VendorMapping] | None = None) -> str | None:
    """Whose POS master resolves ``vendor``'s registers (None when its data names stores)."""
    entry = vendor_for(vendor, mappings)
    if not entry.resolves_by_master:
        return None
    if entry.master is not None:
        return entry.key
    mapping = (mappings or {}).get(vendor)
    return mapping.master_vendor if mapping is not None else None


def _event(
    key: str, source: str, tenant_id: str, data: bytes, meta: dict[str, str] | None = None
) -> ObjectRegistered:
    object_id = content_id(data)
    return ObjectRegistered(
        key=key,
        source=source,
        tenant_id=tenant_id,
        business_date=date.today(),
        object_id=object_id,
        size=len(data),
        sha256=object_id,
        content_type="application/octet-stream",
        registered_at=utcnow(),
        meta=meta or {},
    )


def convert_files(
    vendor: str,
    paths: Sequence[Path | str],
    directory: Directory,
    tenant_id: str,
    *,
    mappings: Mapping[str, VendorMapping] | None = None,
    store: str | None = None,
) -> ParseResult:
    """Run ``vendor``'s Pre-ETL over local files: tables concatenated, rejects prefixed by file.

    ``vendor`` is a built-in vendor or one of the declarative ``mappings``. A transaction found
    in several files is kept as in the last one (a corrected re-send replaces the earlier).
    ``store`` is the store code every file belongs to, for a vendor whose files name no store
    (as the gateway's ``?store=``); :class:`BadInput` when it is missing for one or given to
    another.
    """
    upload = vendor_for(vendor, mappings).sales
    code = upload_store(vendor, upload, store)
    meta = {"vendor": vendor, **({STORE_META: code} if code else {})}
    parser: PreEtl = upload.pre_etl()
    parts: dict[str, list[pa.Table]] = {name: [] for name in _OUTPUT_SCHEMAS}
    rejects: list[Reject] = []
    for raw_path in paths:
        path = Path(raw_path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc}") from exc
        event = _event(f"file://{path.resolve()}", parser.source, tenant_id, data, meta)
        result = parser.parse(event, data, directory)
        for name, tbl in result.tables.items():
            parts.setdefault(name, []).append(tbl)
        rejects.extend(
            dataclasses.replace(r, reason=f"{path.name}: {r.reason}") for r in result.rejects
        )
        log.info("%s: %d rows, %d rejects", path, result.row_count, len(result.rejects))
    tables = {
        name: pa.concat_tables(tbls) if tbls else _OUTPUT_SCHEMAS[name].empty_table()
        for name, tbls in parts.items()
    }
    return ParseResult(tables=_latest_versions(tables), rejects=rejects)


def _latest_versions(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Keep each transaction (and its lines) only from the last file that holds it."""
    tx, ln = tables["raw_pos_transactions"], tables["raw_pos_lines"]
    ids = tx["transaction_id"]
    # pc.unique, not pc.count_distinct: the same answer for ids without nulls, in half the time.
    if tx.num_rows < 2 or (ids.null_count == 0 and len(pc.unique(ids)) == tx.num_rows):
        return tables  # no transaction id twice: nothing was re-sent
    keys = ["tenant_id", "store_id", "transaction_id"]
    order = pa.array(range(tx.num_rows), pa.int64())
    last = (
        tx.select(keys).append_column("_pos", order).group_by(keys, use_threads=False)
        .aggregate([("_pos", "max")])
    )  # fmt: skip
    if last.num_rows == tx.num_rows:
        return tables
    keep = pc.take(last["_pos_max"], pc.sort_indices(last["_pos_max"]))  # file order
    kept_tx = tx.take(keep)
    winners = kept_tx.select([*keys, "source_object_id"])
    marked = winners.append_column("_win", pa.array([True] * winners.num_rows))
    joined = ln.append_column("_row", pa.array(range(ln.num_rows), pa.int64())).join(
        marked, keys=[*keys, "source_object_id"], join_type="inner", use_threads=False
    )
    rows = joined["_row"]
    kept_ln = ln.take(pc.take(rows, pc.sort_indices(rows)))
    return {**tables, "raw_pos_transactions": kept_tx, "raw_pos_lines": kept_ln}


def reject_json(reject: Reject) -> str:
    """One quarantine line: the reject as a JSON object."""
    return json.dumps(dataclasses.asdict(reject), ensure_ascii=False, default=str)


def write_result(result: ParseResult, out_dir: Path) -> dict[str, Path]:
    """Write ``{table}.parquet`` for each table and ``quarantine.jsonl``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, tbl in result.tables.items():
        path = out_dir / f"{name}.parquet"
        pq.write_table(tbl, path)
        written[name] = path
    quarantine = out_dir / "quarantine.jsonl"
    quarantine.write_text("".join(reject_json(r) + "\n" for r in result.rejects), encoding="utf-8")
    written["quarantine"] = quarantine
    return written
