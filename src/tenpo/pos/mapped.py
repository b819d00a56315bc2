"""Declarative POS vendors: a TOML mapping file instead of an adapter (docs/vendors.md).

A mapping names the vendor, the body's format (CSV with any delimiter and encoding, or JSON
receipts with nested lines), which source field feeds each internal field, whether amounts
include tax, the rounding, how the store is found (its code in the data, or the register
through a POS master), the timestamp format and timezone, and the spellings of kinds and tax
rates. :class:`MappedVendorPreEtl` runs any mapping with the same rules as the built-in
vendors: a receipt is loaded whole or rejected whole, with a reason naming the problem.

Mappings are discovered as ``*.toml`` files in ``settings.vendor_mappings_dir`` (default
``{data_dir}/vendors``); :func:`load_mappings` validates them strictly.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tenpo.control.directory import Directory, StoreRef
from tenpo.core.bodies import BodyError, loads, split_records
from tenpo.core.errors import ConfigError
from tenpo.core.preetl import ParseResult, Reject
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos import _arrow, _text
from tenpo.pos.tax import Rounding, added_tax, allocate, split_inclusive

__all__ = [
    "MappedVendorPreEtl",
    "VendorMapping",
    "load_mapping",
    "load_mappings",
    "mapping_dirs",
]

log = logging.getLogger(__name__)

TRANSACTIONS = "raw_pos_transactions"
KIND_NAMES = ("sale", "return", "void")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_PLACEHOLDERS = {"register", "receipt", "date", "store"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldNames(_Strict):
    """Source header (CSV) or key (JSON) of each internal field; None = not sent."""

    store_code: str | None = Field(None, description="Store code (store_resolution = code).")
    register_id: str = Field(description="Register id.")
    receipt: str = Field(description="Receipt number, unique per register (and date).")
    timestamp: str = Field(description="Transaction time.")
    kind: str | None = Field(None, description="Sale/return/void; absent = every row a sale.")
    line_no: str | None = Field(None, description="Line number; absent = position.")
    sku: str = Field(description="Product code (JAN/SKU).")
    name: str | None = Field(None, description="Product name.")
    quantity: str = Field(description="Quantity.")
    unit_price: str = Field(description="Unit price (incl. or excl. tax per tax_mode).")
    discount: str | None = Field(None, description="Line discount, ≥ 0.")
    amount: str | None = Field(None, description="Line amount, checked against the others.")
    tax_rate: str = Field(description="Tax rate spelling (see [tax_rates]).")
    total: str | None = Field(None, description="Receipt total, checked against the lines.")
    tax: str | None = Field(None, description="Receipt tax (tax_mode = excluded), checked.")


class VendorMapping(_Strict):
    """One declarative vendor (the ``[vendor]`` table plus ``[fields]``, ``[kinds]``...)."""

    name: str = Field(description="Vendor name in URLs and `--vendor` (lower_snake_case).")
    format: Literal["csv", "json"] = "csv"
    encoding: str = Field("utf-8", description="Python codec: utf-8, cp932, ...")
    delimiter: str = Field(",", min_length=1, max_length=1)
    receipts_key: str | None = Field(
        None, description="JSON: key of the receipts array in an object body."
    )
    lines_key: str = Field("items", description="JSON: key of each receipt's lines array.")
    tax_mode: Literal["included", "excluded"]
    rounding: Rounding = "floor"
    store_resolution: Literal["code", "master"] = "code"
    master_vendor: str = Field(
        "vendor_a", description="Whose POS master resolves registers (store_resolution = master)."
    )
    timestamp_format: str = Field(
        "iso", description="'iso' (ISO 8601, offset optional) or a strptime format."
    )
    timezone: str = Field(
        "store", description="Zone of timestamps without offset: a zone name, or 'store'."
    )
    returns: Literal["negative", "positive"] = Field(
        "negative",
        description="How return quantities are sent: negative (vendor A) or positive with "
        "the kind giving the sign (vendor B).",
    )
    transaction_id: str = Field(
        "{register}-{receipt}", description="Template: {register} {receipt} {date} {store}."
    )
    future_tolerance_s: int = Field(3600, ge=0)
    fields: FieldNames
    kinds: dict[str, list[str]] = Field(
        default_factory=lambda: {"sale": ["sale"], "return": ["return"], "void": ["void"]}
    )
    tax_rates: dict[str, int] = Field(
        description="Source spelling → percent: {'10' = 10, '8' = 8, '0' = 0}."
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be lower_snake_case: a-z, 0-9, _ (max 48)")
        from tenpo.pos.vendors import built_in

        if value in built_in():
            raise ValueError(f"{value!r} is a built-in vendor")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = set(value) - set(KIND_NAMES)
        if unknown:
            raise ValueError(f"unknown kind(s) {sorted(unknown)}; expected {KIND_NAMES}")
        return value

    @field_validator("tax_rates")
    @classmethod
    def _known_rates(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if v not in (0, 8, 10)}
        if bad or not value:
            raise ValueError(f"rates must be 0, 8 or 10 percent (got {bad or 'none'})")
        return value

    @field_validator("transaction_id")
    @classmethod
    def _template(cls, value: str) -> str:
        names = set(re.findall(r"{(\w+)}", value))
        if not names <= _PLACEHOLDERS or "receipt" not in names:
            raise ValueError(
                f"placeholders must include {{receipt}} and be among {sorted(_PLACEHOLDERS)}"
            )
        return value

    @property
    def source(self) -> str:
        """The landing source of this vendor's sales (``pos_{name}``)."""
        return f"pos_{self.name}"

    def receipts(self, doc: Any) -> list[Any]:
        """The receipts of a decoded JSON body: one object, an array or ``{receipts_key: [...]}``
        (:func:`tenpo.core.bodies.split_records`; the gateway and the Pre-ETL both call this)."""
        if self.receipts_key is None:
            return doc if isinstance(doc, list) else [doc]
        names = {v for v in self.fields.model_dump().values() if isinstance(v, str)}
        fields = frozenset(names | {self.lines_key})
        return split_records(doc, self.receipts_key, fields, "receipt")

    def check(self) -> None:
        """Raise ``ValueError`` for combinations the field validators cannot see."""
        if self.store_resolution == "code" and self.fields.store_code is None:
            raise ValueError("store_resolution = 'code' needs fields.store_code")
        if self.fields.tax is not None and self.tax_mode == "included":
            raise ValueError("fields.tax is only read when tax_mode = 'excluded'")
        if self.timezone != "store":
            _text.zone(self.timezone)


def load_mapping(path: Path) -> VendorMapping:
    """The mapping in the TOML file ``path``; :class:`ConfigError` naming file and field."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"vendor mapping {path}: {exc}") from exc
    body = dict(doc.pop("vendor", {}))
    body.update(doc)  # [fields], [kinds], [tax_rates] next to [vendor]
    try:
        mapping = VendorMapping.model_validate(body)
        mapping.check()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'vendor'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"vendor mapping {path}: {problems}") from None
    except Exception as exc:  # noqa: BLE001 - zone lookups raise several kinds
        raise ConfigError(f"vendor mapping {path}: {exc}") from exc
    return mapping


def load_mappings(dirs: Iterable[Path]) -> dict[str, VendorMapping]:
    """Every ``*.toml`` mapping in ``dirs`` by vendor name; a name defined twice is an error."""
    found: dict[str, VendorMapping] = {}
    where: dict[str, Path] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            mapping = load_mapping(path)
            if mapping.name in found:
                raise ConfigError(
                    f"vendor {mapping.name!r} is defined twice: {where[mapping.name]} and {path}"
                )
            found[mapping.name], where[mapping.name] = mapping, path
    if found:
        log.info("declarative POS vendors: %s", ", ".join(sorted(found)))
    return found


def mapping_dirs(data_dir: Path, configured: Path | None) -> list[Path]:
    """Where mappings are looked for: ``configured`` or ``{data_dir}/vendors``."""
    return [configured if configured is not None else data_dir / "vendors"]


# --- parsing --------------------------------------------------------------------------------


class _Problem(Exception):
    """A record-level problem; the message is the reject reason."""


@dataclass
class _Receipt:
    key: tuple[str, str, str]
    first_line: int
    head: dict[str, str]
    lines: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    raw: list[Any] = field(default_factory=list)


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        raise _Problem(f"unexpected boolean {value}")
    if isinstance(value, (dict, list)):
        raise _Problem(f"unexpected {type(value).__name__}")
    return str(value)


_MONEY = re.compile(r"[+-]?[0-9]+(\.[0-9]{1,2})?")


def _cents(value: str, what: str) -> int:
    text = _text.nfkc(value).replace(",", "")
    if not _MONEY.fullmatch(text):
        raise _Problem(f"bad {what} {value!r}")
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation:
        raise _Problem(f"bad {what} {value!r}") from None


def _int(value: str, what: str) -> int:
    try:
        return _text.parse_int(value)
    except ValueError:
        raise _Problem(f"bad {what} {value!r}") from None


class MappedVendorPreEtl:
    """Pre-ETL of one declarative vendor into ``raw_pos_transactions`` and ``raw_pos_lines``."""

    def __init__(self, mapping: VendorMapping) -> None:
        self.mapping = mapping
        self.source = mapping.source
        self._kinds = {
            _text.nfkc(spelling): kind
            for kind, spellings in mapping.kinds.items()
            for spelling in spellings
        }
        self._rates = {_text.nfkc(k): v for k, v in mapping.tax_rates.items()}
        self._tolerance = timedelta(seconds=mapping.future_tolerance_s)

    # -- reading the body ---------------------------------------------------------------------
    def _receipts(self, data: bytes) -> list[_Receipt]:
        try:
            text = _text.decode(data, self.mapping.encoding)
        except _text.DecodeProblem as exc:
            raise _Problem(str(exc)) from exc
        text = text.lstrip("\ufeff")
        if self.mapping.format == "csv":
            return self._csv_receipts(text)
        return self._json_receipts(text)

    def _csv_receipts(self, text: str) -> list[_Receipt]:
        f = self.mapping.fields
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.mapping.delimiter)
        try:
            records = [(reader.line_num, r) for r in reader if r]
        except csv.Error as exc:
            raise _Problem(f"malformed CSV: {exc}") from exc
        if not records:
            raise _Problem("empty file: no header row")
        header = [_text.nfkc(h) for h in records[0][1]]
        wanted = [v for v in f.model_dump().values() if v is not None]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise _Problem(f"missing column(s) in header: {', '.join(missing)}")
        receipts: dict[tuple[str, str, str], _Receipt] = {}
        for line, row in records[1:]:
            if len(row) != len(header):
                raise _Problem(
                    f"line {line}: row has {len(row)} fields but the header has {len(header)}"
                )
            values = dict(zip(header, row, strict=True))
            key = (
                _text.nfkc(values[f.register_id]),
                _text.nfkc(values[f.receipt]),
                _text.nfkc(values[f.timestamp]),
            )
            receipt = receipts.get(key)
            if receipt is None:
                receipt = receipts[key] = _Receipt(key, line, values)
            receipt.lines.append((line, values))
            receipt.raw.append(values)
        return list(receipts.values())

    def _json_receipts(self, text: str) -> list[_Receipt]:
        try:
            items = self.mapping.receipts(loads(text, parse_float=Decimal))
        except BodyError as exc:
            raise _Problem(f"unreadable body: {exc}") from exc
        f = self.mapping.fields
        receipts = []
        for index, raw in enumerate(items, start=1):
            if not isinstance(raw, dict):
                receipts.append(_Receipt(("", "", ""), index, {}, raw=[raw]))
                continue
            head = {k: v for k, v in raw.items() if not isinstance(v, (list, dict))}
            lines = raw.get(self.mapping.lines_key)
            receipt = _Receipt(
                (str(raw.get(f.register_id, "")), str(raw.get(f.receipt, "")), ""),
                index,
                head,
                raw=[raw],
            )
            if isinstance(lines, list):
                receipt.lines = [(index, ln if isinstance(ln, dict) else {}) for ln in lines]
            receipts.append(receipt)
        return receipts

    # -- the Pre-ETL ----------------------------------------------------------------------------
    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows of every valid receipt; a reject per bad receipt (or one for a bad object)."""
        result = ParseResult()
        try:
            receipts = self._receipts(data)
        except _Problem as exc:
            result.rejects.append(Reject(TRANSACTIONS, str(exc)))
            return result
        cols = _arrow.PosColumns(
            event.tenant_id, self.mapping.name, event.object_id, event.registered_at
        )
        seen: set[str] = set()
        stores: dict[tuple[str, Any], StoreRef | None] = {}
        for receipt in receipts:
            try:
                self._load(receipt, event, directory, stores, seen, cols)
            except _Problem as exc:
                result.rejects.append(self._reject(receipt, str(exc)))
            except _Unresolved as exc:
                result.rejects.append(self._reject(receipt, str(exc), replayable=True))
        for tid, reason in cols.take_out_of_range():
            result.rejects.append(Reject(TRANSACTIONS, f"transaction {tid!r}: {reason}"))
        result.tables = cols.tables()
        log.debug(
            "%s object %s: %d receipts, %d rejects",
            self.mapping.name,
            event.object_id,
            len(receipts),
            len(result.rejects),
        )
        return result

    def _reject(self, receipt: _Receipt, reason: str, replayable: bool = False) -> Reject:
        label = receipt.key[1] or "?"
        return Reject(
            TRANSACTIONS,
            f"receipt {label!r}: {reason}",
            record={"rows": receipt.raw},
            line=receipt.first_line,
            replayable=replayable,
        )

    def _value(self, values: dict[str, Any], name: str | None, required: bool = True) -> str:
        if name is None:
            return ""
        text = _text_of(values.get(name))
        if required and not text.strip():
            raise _Problem(f"missing {name}")
        return text

    def _timestamp(self, text: str) -> datetime:
        value = _text.nfkc(text)
        try:
            if self.mapping.timestamp_format == "iso":
                return datetime.fromisoformat(value)
            return datetime.strptime(value, self.mapping.timestamp_format)
        except ValueError:
            raise _Problem(
                f"bad {self.mapping.fields.timestamp} {text!r} "
                f"(expected {self.mapping.timestamp_format})"
            ) from None

    def _load(
        self,
        receipt: _Receipt,
        event: ObjectRegistered,
        directory: Directory,
        stores: dict[tuple[str, Any], StoreRef | None],
        seen: set[str],
        cols: _arrow.PosColumns,
    ) -> None:
        m, f = self.mapping, self.mapping.fields
        if not receipt.head:
            raise _Problem("expected a receipt object")
        register = _text.nfkc(self._value(receipt.head, f.register_id))
        number = _text.nfkc(self._value(receipt.head, f.receipt))
        ts = self._timestamp(self._value(receipt.head, f.timestamp))
        kind_text = _text.nfkc(self._value(receipt.head, f.kind)) if f.kind else ""
        kind = self._kinds.get(kind_text) if f.kind else "sale"
        if kind is None:
            raise _Problem(f"unknown {f.kind} {kind_text!r}")
        if not receipt.lines:
            raise _Problem("no lines")

        # The store: by its code in the data, or the register through the POS master.
        if m.store_resolution == "code":
            code = _text.nfkc(self._value(receipt.head, f.store_code))
            if ("code", code) not in stores:
                stores[("code", code)] = directory.store_by_code(event.tenant_id, code)
            store = stores[("code", code)]
            if store is None:
                raise _Unresolved(f"unknown {f.store_code} {code!r}")
        else:
            day = (ts if ts.tzinfo is None else ts.astimezone(self._zone(None))).date()
            if (register, day) not in stores:
                stores[(register, day)] = directory.register_store(
                    event.tenant_id, m.master_vendor, register, day
                )
            store = stores[(register, day)]
            if store is None:
                raise _Unresolved(f"register {register!r} unknown on {day.isoformat()}")
        zone = _text.zone(store.timezone)
        aware = ts.replace(tzinfo=self._zone(store)) if ts.tzinfo is None else ts
        local = aware.astimezone(zone).replace(tzinfo=None)
        if aware > event.registered_at + self._tolerance:
            raise _Problem(
                f"{f.timestamp} {aware.isoformat()} is in the future (the body arrived at "
                f"{event.registered_at.isoformat()}, tolerance {self._tolerance})"
            )

        lines = self._lines(receipt, kind)
        tid = m.transaction_id.format(
            register=register, receipt=number, date=f"{local:%Y%m%d}", store=store.code
        )
        if tid in seen:
            raise _Problem(f"duplicate receipt {tid} in this body")
        seen.add(tid)
        self._append(receipt, store, register, tid, kind, aware, local, lines, cols)

    def _zone(self, store: StoreRef | None) -> Any:
        if self.mapping.timezone != "store":
            return _text.zone(self.mapping.timezone)
        return _text.zone(store.timezone if store is not None else "Asia/Tokyo")

    def _lines(self, receipt: _Receipt, kind: str) -> list[_Line]:
        """Checked lines in the internal sign convention (returns negative), money in cents."""
        f, m = self.mapping.fields, self.mapping
        lines: list[_Line] = []
        for position, (_, values) in enumerate(receipt.lines, start=1):
            line_no = (
                _int(self._value(values, f.line_no), f.line_no or "") if f.line_no else position
            )
            qty = _int(self._value(values, f.quantity), f.quantity)
            unit = _cents(self._value(values, f.unit_price), f.unit_price)
            disc_text = self._value(values, f.discount, required=False) if f.discount else ""
            discount = _cents(disc_text, f.discount or "") if disc_text.strip() else 0
            rate_text = _text.nfkc(self._value(values, f.tax_rate))
            rate = self._rates.get(rate_text)
            if rate is None:
                raise _Problem(f"line {line_no}: unknown {f.tax_rate} {rate_text!r}")
            if qty == 0:
                raise _Problem(f"line {line_no}: {f.quantity} is 0")
            if discount < 0 or unit < 0:
                raise _Problem(f"line {line_no}: negative {f.unit_price} or {f.discount}")
            if m.returns == "negative":
                if kind == "sale" and qty < 0:
                    raise _Problem(f"line {line_no}: negative {f.quantity} on a sale receipt")
                if kind == "return" and qty > 0:
                    raise _Problem(f"line {line_no}: positive {f.quantity} on a return receipt")
                sign = -1 if qty < 0 else 1
            else:
                if qty < 0:
                    raise _Problem(
                        f"line {line_no}: negative {f.quantity} (the kind gives the sign)"
                    )
                sign = -1 if kind == "return" else 1
            amount = sign * (unit * abs(qty) - discount)
            if f.amount is not None:
                sent = _cents(self._value(values, f.amount), f.amount)
                if sent not in (amount, -amount if m.returns == "positive" else amount):
                    raise _Problem(
                        f"line {line_no}: {f.amount} {_yen(sent)} is not {f.unit_price} × "
                        f"{f.quantity} − {f.discount or 'discount'} = {_yen(amount)}"
                    )
            if m.tax_mode == "included" and amount % 100:
                raise _Problem(f"line {line_no}: tax-inclusive amounts must be whole yen")
            name = self._value(values, f.name, required=False) if f.name else ""
            sku = _text.nfkc(self._value(values, f.sku))
            lines.append((line_no, sku, name, sign * abs(qty), unit, amount, rate))
        numbers = [ln[0] for ln in lines]
        if len(set(numbers)) != len(numbers):
            raise _Problem(f"duplicate line numbers {sorted(numbers)}")
        if f.total is not None:
            total = _cents(self._value(receipt.head, f.total), f.total)
            computed = sum(ln[5] for ln in lines)
            if m.tax_mode == "excluded":
                computed += self._tax_of(receipt, lines)[0]
            if total not in (computed, abs(computed) if m.returns == "positive" else computed):
                raise _Problem(
                    f"lines add up to {_yen(computed)} but {f.total} is {_yen(total)}"
                    f" (difference {_yen(computed - total)})"
                )
        return lines

    def _tax_of(self, receipt: _Receipt, lines: list[_Line]) -> tuple[int, dict[int, int]]:
        """Excluded mode: the receipt's tax in cents and per rate (the vendor's, if checked)."""
        f, m = self.mapping.fields, self.mapping
        by_rate: dict[int, int] = {}
        for ln in lines:
            by_rate[ln[6]] = by_rate.get(ln[6], 0) + ln[5]
        expected = {r: added_tax(s, r, 100, m.rounding) * 100 for r, s in by_rate.items()}
        total = sum(expected.values())
        if f.tax is None:
            return total, expected
        sent = _cents(self._value(receipt.head, f.tax), f.tax)
        sent = -abs(sent) if sum(by_rate.values()) < 0 else sent
        taxable = [r for r in by_rate if r > 0]
        difference = sent - total
        if abs(difference) > 100 * len(taxable):
            raise _Problem(
                f"{f.tax} {_yen(sent)} differs from the expected {_yen(total)} by more than "
                "1 yen per tax rate"
            )
        for r in sorted(taxable, reverse=True):
            step = max(-100, min(100, difference))
            expected[r] += step
            difference -= step
        return sent, expected

    def _append(
        self,
        receipt: _Receipt,
        store: StoreRef,
        register: str,
        tid: str,
        kind: str,
        aware: datetime,
        local: datetime,
        lines: list[_Line],
        cols: _arrow.PosColumns,
    ) -> None:
        n = len(lines)
        excl, taxes = [0] * n, [0] * n
        by_rate: dict[int, list[int]] = {}
        for i, ln in enumerate(lines):
            by_rate.setdefault(ln[6], []).append(i)
        if self.mapping.tax_mode == "included":
            for rate, idx in by_rate.items():
                yen = [lines[i][5] // 100 for i in idx]
                e, t = split_inclusive(yen, rate, self.mapping.rounding)
                for i, e_i, t_i in zip(idx, e, t, strict=True):
                    excl[i], taxes[i] = e_i * 100, t_i * 100
            unit_excl = [_unit_excl_cents(ln[4], ln[6]) for ln in lines]
        else:
            _, per_rate = self._tax_of(receipt, lines)
            for rate, idx in by_rate.items():
                shares = allocate(per_rate[rate], [abs(lines[i][5]) for i in idx])
                for i, share in zip(idx, shares, strict=True):
                    excl[i], taxes[i] = lines[i][5], share
            unit_excl = [ln[4] for ln in lines]
        store_id, day_no = store.store_id, _arrow.day_number(local.date())
        for i, (line_no, sku, name, qty, _unit, _amount, rate) in enumerate(lines):
            cols.ln.append(
                (store_id, tid, day_no, line_no, sku, name, qty, unit_excl[i], excl[i], rate,
                 taxes[i], excl[i] + taxes[i])
            )  # fmt: skip
        total_excl, total_tax = sum(excl), sum(taxes)
        cols.tx.append(
            (store_id, register, tid, day_no, _arrow.micros(aware), _arrow.micros(local), kind,
             total_excl, total_tax, total_excl + total_tax, sum(ln[3] for ln in lines))
        )  # fmt: skip


class _Unresolved(Exception):
    """The store cannot be resolved yet (replayable)."""


# (line_no, sku, name, quantity (signed), unit price cents, amount cents (signed), rate %)
_Line = tuple[int, str, str, int, int, int, int]


def _unit_excl_cents(unit_cents: int, rate: int) -> int:
    """Unit price without tax in cents, rounded half up, from a tax-inclusive price in cents."""
    return (2 * unit_cents * 100 + 100 + rate) // (2 * (100 + rate))


def _yen(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"
