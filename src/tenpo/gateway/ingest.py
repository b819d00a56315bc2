"""What each ingest endpoint does, free of HTTP: check the body, check ownership, land it.

:class:`Ingestor` is called by the FastAPI routes with an authenticated principal and the raw
body. It raises :mod:`tenpo.core.errors` exceptions (the routes turn them into problem JSON)
and returns an :class:`IngestReceipt` for the 202 answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tenpo.control.directory import Directory
from tenpo.core.errors import Forbidden, NotFound
from tenpo.gateway import _checks
from tenpo.lake.landing import Landed, LandingZone

if TYPE_CHECKING:
    from tenpo.pos.mapped import VendorMapping

log = logging.getLogger(__name__)

POS_VENDORS: tuple[str, ...] = ("vendor_a", "vendor_b")
"""POS vendors whose native sales format the gateway accepts."""

MASTER_VENDORS: tuple[str, ...] = ("vendor_a",)
"""POS vendors that send a register→store master file."""

VENDOR_A_SALES_COLUMNS: tuple[str, ...] = (
    "レジ番号", "レシート番号", "取引日時", "取引区分", "行番号", "JANコード", "商品名",
    "数量", "単価", "値引額", "金額", "税率区分", "合計金額",
)  # fmt: skip
"""Header columns a vendor A sales CSV must have (FORMATS.md)."""

CSV_CP932 = "text/csv; charset=cp932"
JSON_UTF8 = "application/json"
JSONL_UTF8 = "application/x-ndjson"


class Principal(Protocol):
    """The authenticated caller, as :class:`tenpo.control.ControlPlane` returns it."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    def require(self, scope: str) -> None:
        """Raise :class:`tenpo.core.errors.Forbidden` naming ``scope`` unless held."""
        ...


class ControlPlane(Protocol):
    """The part of the control plane the gateway uses."""

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid token; :class:`tenpo.core.errors.AuthError` otherwise."""
        ...

    def directory(self) -> Directory:
        """Cached tenant-scoped lookups of stores and devices (None for other tenants')."""
        ...


class IngestReceipt(BaseModel):
    """The 202 answer: where the body was kept, whether it is new, and what it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    object_id: str = Field(description="Content hash or the sender's Idempotency-Key.")
    key: str = Field(description="Lake key under landing/ where the bytes are kept.")
    bytes: int = Field(ge=0, description="Size of the body as received.")
    created: bool = Field(description="False when this exact object was landed before.")
    counts: dict[str, int] = Field(
        default_factory=dict, description="Records found by the cheap checks, e.g. receipts."
    )


class Ingestor:
    """Checks and lands ingest bodies for authenticated principals."""

    def __init__(
        self,
        control: ControlPlane,
        landing: LandingZone,
        mappings: Mapping[str, VendorMapping] | None = None,
    ) -> None:
        self._control = control
        self.landing = landing
        self.mappings: dict[str, VendorMapping] = dict(mappings or {})

    # -- POS -------------------------------------------------------------------------------
    @property
    def vendors(self) -> tuple[str, ...]:
        """Every POS vendor accepted: the built-in ones and the declarative mappings."""
        return (*POS_VENDORS, *sorted(self.mappings))

    def check_vendor(self, vendor: str, kind: str) -> None:
        """Raise :class:`NotFound` unless ``vendor`` accepts uploads of ``kind`` (sales|master)."""
        if vendor not in self.vendors:
            raise NotFound(
                f"unknown POS vendor {vendor!r}; expected one of {', '.join(self.vendors)}",
                vendor=vendor,
            )
        if kind == "master" and vendor not in MASTER_VENDORS:
            raise NotFound(
                f"POS vendor {vendor!r} has no master upload "
                f"(only {', '.join(MASTER_VENDORS)} sends one)",
                vendor=vendor,
            )

    def pos_sales(
        self, principal: Principal, vendor: str, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """Land a vendor's native sales body after the cheap checks (and store ownership)."""
        self.check_vendor(vendor, "sales")
        _checks.require_body(body)
        if vendor == "vendor_a":
            _checks.refuse_utf8_as_cp932(body, vendor)
            rows = _checks.csv_rows(_checks.decode_cp932(body))
            _checks.require_columns(rows, VENDOR_A_SALES_COLUMNS, "vendor_a sales CSV")
            counts = {"rows": _checks.data_row_count(rows)}
            ext, content_type = "csv", CSV_CP932
        elif vendor in self.mappings:
            counts, ext, content_type = self._mapped_checks(principal, self.mappings[vendor], body)
        else:
            receipts = _checks.vendor_b_receipts(_checks.parse_json(body))
            self._require_stores(principal.tenant_id, _checks.vendor_b_store_codes(receipts))
            counts = {"receipts": len(receipts)}
            ext, content_type = "json", JSON_UTF8
        landed = self._land(
            principal,
            f"pos_{vendor}",
            body,
            ext,
            content_type,
            idempotency_key,
            {"vendor": vendor},
        )
        return _receipt(landed, counts)

    def pos_master(
        self, principal: Principal, vendor: str, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """Land a vendor A POS master (CSV, CP932) whose store codes are the tenant's."""
        self.check_vendor(vendor, "master")
        _checks.require_body(body)
        _checks.refuse_utf8_as_cp932(body, vendor)
        rows = _checks.csv_rows(_checks.decode_cp932(body))
        self._require_stores(principal.tenant_id, _checks.vendor_a_master_store_codes(rows))
        landed = self._land(
            principal,
            f"pos_{vendor}_master",
            body,
            "csv",
            CSV_CP932,
            idempotency_key,
            {"vendor": vendor},
        )
        return _receipt(landed, {"rows": _checks.data_row_count(rows)})

    def _mapped_checks(
        self, principal: Principal, mapping: VendorMapping, body: bytes
    ) -> tuple[dict[str, int], str, str]:
        """Cheap checks of a declarative vendor's body: encoding, shape, header, store codes."""
        if mapping.encoding.replace("-", "_").lower() in ("cp932", "shift_jis", "sjis"):
            _checks.refuse_utf8_as_cp932(body, mapping.name)
        try:
            text = body.decode(mapping.encoding)
        except UnicodeDecodeError as exc:
            raise _checks.MalformedBody(
                f"body is not {mapping.encoding} text: undecodable byte(s) at offset {exc.start}",
                offset=exc.start,
            ) from exc
        text = text.lstrip("\ufeff")
        fields = mapping.fields
        if mapping.format == "json":
            doc = _checks.parse_json(text.encode())
            receipts = _checks.mapped_receipts(doc, mapping)
            if not all(isinstance(r, dict) for r in receipts):
                raise _checks.MalformedBody("body must be a receipt object or an array of them")
            if fields.store_code and mapping.store_resolution == "code":
                codes = {
                    _checks.normalize_code(str(r.get(fields.store_code)))
                    for r in receipts
                    if r.get(fields.store_code) is not None
                }
                self._require_stores(principal.tenant_id, codes - {""})
            return {"receipts": len(receipts)}, "json", JSON_UTF8
        rows = _checks.csv_rows_with(text, mapping.delimiter)
        wanted = tuple(v for v in fields.model_dump().values() if v is not None)
        _checks.require_columns(rows, wanted, f"{mapping.name} sales file")
        if fields.store_code and mapping.store_resolution == "code":
            header = [_checks.normalize_code(h).lstrip("\ufeff") for h in rows[0]]
            col = header.index(fields.store_code)
            codes = {_checks.normalize_code(r[col]) for r in rows[1:] if len(r) > col}
            self._require_stores(principal.tenant_id, codes - {""})
        ext = "tsv" if mapping.delimiter == "\t" else "csv"
        return {"rows": _checks.data_row_count(rows)}, ext, f"text/csv; charset={mapping.encoding}"

    # -- devices and video -----------------------------------------------------------------
    def iot_events(
        self, principal: Principal, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """Land ``{"events": [...]}`` when every event's device is the tenant's."""
        _checks.require_body(body)
        events = _checks.iot_events(_checks.parse_json(body))
        directory = self._control.directory()
        for device_id in sorted({str(e["device_id"]) for e in events}):
            if directory.device(principal.tenant_id, device_id) is None:
                raise Forbidden(
                    f"device {device_id!r} is not registered to tenant {principal.tenant_id!r}",
                    device_id=device_id,
                )
        landed = self._land(principal, "iot", body, "json", JSON_UTF8, idempotency_key, {})
        return _receipt(landed, {"events": len(events)})

    def visitor_events(
        self, principal: Principal, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """Land a JSON Lines batch of visitor events as the video analyzer emits them."""
        _checks.require_body(body)
        events = _checks.jsonl_objects(body)
        landed = self._land(
            principal, "visitor_events", body, "jsonl", JSONL_UTF8, idempotency_key, {}
        )
        return _receipt(landed, {"events": len(events)})

    # -- helpers ---------------------------------------------------------------------------
    def _require_stores(self, tenant_id: str, codes: set[str]) -> None:
        directory = self._control.directory()
        for code in sorted(codes):
            if directory.store_by_code(tenant_id, code) is None:
                raise Forbidden(
                    f"store code {code!r} is not a store of tenant {tenant_id!r}", store_code=code
                )

    def _land(
        self,
        principal: Principal,
        source: str,
        body: bytes,
        ext: str,
        content_type: str,
        idempotency_key: str | None,
        meta: dict[str, str],
    ) -> Landed:
        landed = self.landing.land(
            source,
            principal.tenant_id,
            body,
            ext,
            idempotency_key=idempotency_key or None,
            content_type=content_type,
            meta={"key_id": principal.key_id, **meta},
        )
        log.info(
            "landed %s (%d bytes, new=%s, key %s)",
            landed.event.key,
            landed.event.size,
            landed.created,
            principal.key_id,
        )
        return landed


def _receipt(landed: Landed, counts: dict[str, int]) -> IngestReceipt:
    event = landed.event
    return IngestReceipt(
        object_id=event.object_id,
        key=event.key,
        bytes=event.size,
        created=landed.created,
        counts=counts,
    )
