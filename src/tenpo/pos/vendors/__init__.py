"""The POS vendor registry: each vendor is one plugin, one registry finds them.

A built-in vendor is a module ``tenpo/pos/vendors/<key>.py`` defining ``VENDOR``, a
:class:`Vendor` that declares its key, its uploads (landing source, file extension, media
type, the gateway's cheap ``check(body)``, its Pre-ETL) and, where it has one, its simulator
writer. A declarative vendor (a TOML mapping, :mod:`tenpo.pos.mapped`) is registered the same
way by :func:`declarative`. The gateway, the streamer, ``tenpo pos convert`` and the demo read
:func:`registry` and name no vendor (as Frigate's detector plugins: each plugin declares its
key and config, the registry discovers the modules).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from tenpo.core import checks
from tenpo.core.errors import ConfigError

if TYPE_CHECKING:
    from tenpo.core.preetl import PreEtl
    from tenpo.core.settings import Settings
    from tenpo.pos.mapped import VendorMapping

__all__ = [
    "CSV_CP932",
    "JSON_UTF8",
    "Checked",
    "Upload",
    "Vendor",
    "built_in",
    "declarative",
    "registry",
    "registry_for",
]

CSV_CP932 = "text/csv; charset=cp932"
JSON_UTF8 = "application/json"


@dataclass(frozen=True)
class Checked:
    """What a cheap check found: counts for the 202 answer, store codes whose ownership the
    gateway checks (empty when stores are resolved later, e.g. through a POS master)."""

    counts: dict[str, int]
    store_codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Upload:
    """One kind of upload of a vendor (its sales, or its POS master)."""

    source: str
    """Landing source, e.g. ``pos_vendor_a``; the streamer routes objects by it."""
    ext: str
    """File extension of the landed object."""
    content_type: str
    """Media type the body is kept with."""
    check: Callable[[bytes], Checked]
    """Cheap synchronous check of a non-empty body; raises :class:`checks.MalformedBody`
    (or another :class:`tenpo.core.errors.BadInput`) for what a sender must hear at once."""
    pre_etl: Callable[[], PreEtl]
    """A new instance of the Pre-ETL that parses the landed object."""


@dataclass(frozen=True)
class Vendor:
    """A POS vendor: its key (in ``/v1/pos/{key}/...`` and ``--vendor``), its uploads."""

    key: str
    title: str
    sales: Upload
    master: Upload | None = None
    writer: str | None = None
    """The simulator's writer for this vendor (``tenpo.simulate.writers``), if it has one."""
    resolves_by_master: bool = False
    """True when registers resolve to stores through a POS master (convert needs one)."""
    notes: tuple[str, ...] = field(default=())

    def upload(self, kind: str) -> Upload | None:
        """The upload of ``kind`` (``sales`` or ``master``), None when the vendor has none."""
        return self.sales if kind == "sales" else self.master if kind == "master" else None

    @property
    def uploads(self) -> tuple[Upload, ...]:
        """Every upload the vendor accepts (sales first)."""
        return (self.sales,) if self.master is None else (self.sales, self.master)


@cache
def built_in() -> dict[str, Vendor]:
    """Every built-in vendor: the ``VENDOR`` of each public module of this package, by key."""
    found: dict[str, Vendor] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        vendor = getattr(module, "VENDOR", None)
        if not isinstance(vendor, Vendor):
            raise ConfigError(f"{module.__name__} defines no VENDOR (a tenpo.pos.vendors.Vendor)")
        if vendor.key != info.name:
            raise ConfigError(f"{module.__name__} declares vendor {vendor.key!r}")
        found[vendor.key] = vendor
    return found


def registry(mappings: Mapping[str, VendorMapping] | None = None) -> dict[str, Vendor]:
    """The built-in vendors, then the declarative ``mappings`` (sorted by name)."""
    vendors = dict(built_in())
    for name in sorted(mappings or {}):
        if name in vendors:
            raise ConfigError(f"declarative vendor {name!r} is a built-in vendor")
        vendors[name] = declarative((mappings or {})[name])
    return vendors


def registry_for(settings: Settings) -> dict[str, Vendor]:
    """The registry with the declarative vendors of ``settings.vendor_mappings_dir``."""
    from tenpo.pos.mapped import load_mappings, mapping_dirs

    return registry(load_mappings(mapping_dirs(settings.data_dir, settings.vendor_mappings_dir)))


def declarative(mapping: VendorMapping) -> Vendor:
    """A declarative vendor as a registry entry: its check and Pre-ETL run the mapping."""

    def pre_etl() -> PreEtl:
        from tenpo.pos.mapped import MappedVendorPreEtl

        return MappedVendorPreEtl(mapping)

    if mapping.format == "json":
        ext, content_type = "json", JSON_UTF8
    else:
        ext = "tsv" if mapping.delimiter == "\t" else "csv"
        content_type = f"text/csv; charset={mapping.encoding}"
    return Vendor(
        key=mapping.name,
        title=f"{mapping.name} (declarative, {mapping.format})",
        sales=Upload(
            mapping.source, ext, content_type, lambda b: _check_mapped(mapping, b), pre_etl
        ),
        resolves_by_master=mapping.store_resolution == "master",
    )


def _check_mapped(mapping: VendorMapping, body: bytes) -> Checked:
    """Cheap checks of a declarative vendor's body: encoding, shape, header, store codes."""
    from tenpo.core.bodies import BodyError

    if mapping.encoding.replace("-", "_").lower() in ("cp932", "shift_jis", "sjis"):
        checks.refuse_utf8_as_cp932(body, mapping.name)
    try:
        text = body.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        raise checks.MalformedBody(
            f"body is not {mapping.encoding} text: undecodable byte(s) at offset {exc.start}",
            offset=exc.start,
        ) from exc
    text = text.lstrip("\ufeff")
    fields = mapping.fields
    by_code = fields.store_code is not None and mapping.store_resolution == "code"
    if mapping.format == "json":
        doc = checks.parse_json(text.encode())
        try:
            receipts = mapping.receipts(doc)
        except BodyError as exc:
            raise checks.MalformedBody(str(exc)) from exc
        if not all(isinstance(r, dict) for r in receipts):
            raise checks.MalformedBody("body must be a receipt object or an array of them")
        codes: set[str] = set()
        if by_code:
            codes = {
                checks.normalize_code(str(r.get(fields.store_code)))
                for r in receipts
                if r.get(fields.store_code) is not None
            }
        return Checked({"receipts": len(receipts)}, frozenset(codes - {""}))
    rows = checks.csv_rows_with(text, mapping.delimiter)
    wanted = tuple(v for v in fields.model_dump().values() if v is not None)
    checks.require_columns(rows, wanted, f"{mapping.name} sales file")
    codes = set()
    if by_code:
        header = [checks.normalize_code(h).lstrip("\ufeff") for h in rows[0]]
        col = header.index(str(fields.store_code))
        codes = {checks.normalize_code(r[col]) for r in rows[1:] if len(r) > col}
    return Checked({"rows": checks.data_row_count(rows)}, frozenset(codes - {""}))
