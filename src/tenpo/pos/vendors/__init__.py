"""The POS vendor registry: each vendor is one plugin, one registry finds them.

A built-in vendor is a module ``tenpo/pos/vendors/<key>.py`` defining ``VENDOR``, a
:class:`Vendor` that declares its key, its uploads (landing source, file extension, media
type, the gateway's cheap ``check(body)``, its Pre-ETL) and, where it has one, its simulator
writer. A vendor shipped outside tenpo is a module anywhere on the path named by an entry point
of the group ``tenpo.pos_vendors`` (``key = "package.module"``) whose ``VENDOR`` is found the
same way. A declarative vendor (a TOML mapping, :mod:`tenpo.pos.mapped`) is registered by
:func:`declarative`. The gateway, the streamer, ``tenpo pos convert``, the demo and
``docs/vendors.md`` read the registry and name no vendor (as Frigate's detector plugins: each
plugin declares its key and config, the registry discovers the modules).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from tenpo.core import checks
from tenpo.core.errors import BadInput, ConfigError

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
    "BEGIN_MARK",
    "END_MARK",
    "ENTRY_POINT_GROUP",
    "STORE_META",
    "built_in",
    "by_source",
    "declarative",
    "markdown_table",
    "master_sources",
    "registry",
    "registry_for",
    "records_schema",
    "routes",
    "upload_store",
    "with_table",
]

ENTRY_POINT_GROUP = "tenpo.pos_vendors"
"""Entry-point group of vendor plugins shipped outside tenpo (name = key, value = module)."""

STORE_META = "store_code"
"""Key of the landed object's ``meta`` holding the store code of a store-less upload."""

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
    store_from_upload: bool = False
    """True when the body names no store: the sender names it (``?store=<code>`` on the
    gateway, ``--store`` for ``tenpo pos convert``); the gateway checks it is the caller's,
    and the Pre-ETL finds it in the event's ``meta[STORE_META]``. Bytes sent for two stores
    are two objects (:meth:`tenpo.lake.landing.LandingZone.stage`, ``scope``)."""
    json_schema: Mapping[str, Any] | None = None
    """JSON Schema of the JSON bodies ``check`` accepts (the gateway's OpenAPI offers the
    ``anyOf`` of every JSON upload's); ``example`` in it is the documented example body."""


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
    connector: str | None = None
    """Module of its pull connector (:mod:`tenpo.pos.connectors`), if tenpo can pull it."""
    notes: tuple[str, ...] = field(default=())

    def upload(self, kind: str) -> Upload | None:
        """The upload of ``kind`` (``sales`` or ``master``), None when the vendor has none."""
        return self.sales if kind == "sales" else self.master if kind == "master" else None

    @property
    def uploads(self) -> tuple[Upload, ...]:
        """Every upload the vendor accepts (sales first)."""
        return (self.sales,) if self.master is None else (self.sales, self.master)


def records_schema(wrapper: str, fields: frozenset[str], what: str, example: Any) -> dict[str, Any]:
    """JSON Schema of a body read by :func:`tenpo.core.bodies.split_records`: one ``what``
    object, an array of objects, or ``{wrapper: [objects]}`` with none of the record's
    ``fields`` beside it (an object with both is refused as ambiguous)."""
    obj = {"type": "object"}
    return {
        "description": f"One {what} object, an array of them, or "
        f'{{"{wrapper}": [...]}} (not both).',
        "anyOf": [
            {"type": "array", "items": obj},
            {
                "type": "object",
                "required": [wrapper],
                "properties": {wrapper: {"type": "array", "items": obj}},
                "not": {"anyOf": [{"required": [f]} for f in sorted(fields)]},
            },
            {"type": "object", "not": {"required": [wrapper]}},
        ],
        "example": example,
    }


def _plugin(module_name: str, key: str) -> Vendor:
    module = importlib.import_module(module_name)
    vendor = getattr(module, "VENDOR", None)
    if not isinstance(vendor, Vendor):
        raise ConfigError(f"{module_name} defines no VENDOR (a tenpo.pos.vendors.Vendor)")
    if vendor.key != key:
        raise ConfigError(f"{module_name} declares vendor {vendor.key!r}, registered as {key!r}")
    for kind in ("sales", "master"):
        upload = vendor.upload(kind)
        if upload is not None and not upload.source.startswith("pos_"):
            raise ConfigError(f"{module_name}: {kind} source {upload.source!r} lacks pos_")
    return vendor


@cache
def built_in() -> dict[str, Vendor]:
    """Every code vendor, by key: the ``VENDOR`` of each public module of this package, then
    of each module named by an entry point of :data:`ENTRY_POINT_GROUP` (sorted by key).

    Raises :class:`ConfigError` for a module without a ``VENDOR``, a key that is not the
    module's (entry point's) name, or two vendors with one key or one landing source.
    """
    found: dict[str, Vendor] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            found[info.name] = _plugin(f"{__name__}.{info.name}", info.name)
    for point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=str):
        if point.name in found:
            raise ConfigError(f"vendor plugin {point.value!r} reuses the key {point.name!r}")
        found[point.name] = _plugin(point.value, point.name)
    _check_sources(found)
    return found


def _check_sources(vendors: Mapping[str, Vendor]) -> None:
    seen: dict[str, str] = {}
    for vendor in vendors.values():
        for upload in vendor.uploads:
            if upload.source in seen:
                raise ConfigError(
                    f"vendors {seen[upload.source]!r} and {vendor.key!r} both land "
                    f"{upload.source!r}"
                )
            seen[upload.source] = vendor.key


def by_source(vendors: Mapping[str, Vendor] | None = None) -> dict[str, tuple[Vendor, str]]:
    """Landing source → (vendor, upload kind) of ``vendors`` (default :func:`built_in`)."""
    found: dict[str, tuple[Vendor, str]] = {}
    for vendor in (built_in() if vendors is None else vendors).values():
        for kind in ("master", "sales"):
            upload = vendor.upload(kind)
            if upload is not None:
                found[upload.source] = (vendor, kind)
    return found


def routes(vendors: Mapping[str, Vendor] | None = None) -> dict[str, tuple[str, str]]:
    """Landing source → (gateway path, media type) of every upload, masters first (a master
    must be loaded before the sales that resolve registers through it)."""
    found = by_source(vendors)
    order = sorted(found, key=lambda s: (found[s][1] != "master", found[s][0].key))
    return {
        s: (f"/v1/pos/{found[s][0].key}/{found[s][1]}", _upload(found[s]).content_type)
        for s in order
    }


def _upload(entry: tuple[Vendor, str]) -> Upload:
    upload = entry[0].upload(entry[1])
    assert upload is not None
    return upload


def upload_store(vendor: str, upload: Upload, store: str | None) -> str | None:
    """The normalised store code sent with an upload of ``vendor``: required (and non-empty)
    when its body names no store (``upload.store_from_upload``), refused otherwise;
    :class:`BadInput` naming the problem."""
    code = checks.normalize_code(store) if store is not None else None
    if upload.store_from_upload:
        if not code:
            raise BadInput(
                f"{vendor} sales name no store: send the store code of the store the file "
                "belongs to (?store=<store code>, or --store for tenpo pos convert)",
                vendor=vendor,
            )
        return code
    if store is not None:
        raise BadInput(
            f"{vendor} names its stores in the data (or through its POS master): drop the "
            "store parameter",
            vendor=vendor,
        )
    return None


def master_sources(vendors: Mapping[str, Vendor] | None = None) -> frozenset[str]:
    """Landing sources of POS masters: loading one may resolve earlier rejected sales."""
    return frozenset(
        v.master.source for v in (built_in() if vendors is None else vendors).values() if v.master
    )


def markdown_table(vendors: Mapping[str, Vendor] | None = None) -> str:
    """The upload endpoints of ``vendors`` (default :func:`built_in`) as a Markdown table
    (``docs/vendors.md`` and the README hold it; a test checks they match the registry)."""
    rows = ["| vendor | endpoint | body | landing source |", "|---|---|---|---|"]
    found = by_source(vendors)
    for source, (route, content_type) in routes(vendors).items():
        query = "?store={store code}" if _upload(found[source]).store_from_upload else ""
        rows.append(
            f"| `{found[source][0].key}` | `POST {route}{query}` | `{content_type}` | `{source}` |"
        )
    rows.append("")
    rows += [
        f"- `{v.key}`: {v.title}" for v in (built_in() if vendors is None else vendors).values()
    ]
    return "\n".join(rows) + "\n"


BEGIN_MARK = "<!-- vendors:begin (generated by `tenpo pos vendors --markdown`) -->"
END_MARK = "<!-- vendors:end -->"


def with_table(text: str, vendors: Mapping[str, Vendor] | None = None) -> str:
    """``text`` with the part between :data:`BEGIN_MARK` and :data:`END_MARK` replaced by
    :func:`markdown_table`; raises :class:`ConfigError` when the marks are missing."""
    start, end = text.find(BEGIN_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        raise ConfigError("no vendors table marks in the text")
    head = text[: start + len(BEGIN_MARK)]
    return f"{head}\n{markdown_table(vendors)}{text[end:]}"


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
