"""The default Pre-ETL registry: landing source name → the adapter that parses it.

POS sources come from the vendor registry (:mod:`tenpo.pos.vendors`: every upload of every
vendor plugin, and the declarative vendors of the settings); device sources from
:data:`DEFAULT_PRE_ETLS`, imported lazily, one by one, so the streamer runs (and quarantines
that source's objects as "no Pre-ETL") while an adapter's package is not installed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tenpo.core.errors import ConfigError
from tenpo.core.preetl import PreEtl
from tenpo.core.settings import Settings

if TYPE_CHECKING:
    from tenpo.pos.vendors import Vendor

log = logging.getLogger(__name__)

# source -> (module, class) of the sources that are not POS vendors; each class is
# constructible with no arguments.
DEFAULT_PRE_ETLS: dict[str, tuple[str, str]] = {
    "iot": ("tenpo.iot", "IotPreEtl"),
    "visitor_events": ("tenpo.video", "VisitorEventsPreEtl"),
}


def default_pre_etls() -> dict[str, PreEtl]:
    """One instance of every available built-in Pre-ETL, keyed by its landing source: the
    uploads of every vendor plugin (:func:`tenpo.pos.vendors.built_in`), then the devices'.

    A missing device module or class is logged and left out; an adapter that declares another
    ``source`` than its registry entry raises :class:`ConfigError`.
    """
    from tenpo.pos.vendors import built_in

    found = _vendor_pre_etls(built_in())
    for source, (module_name, class_name) in DEFAULT_PRE_ETLS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only the adapter's own package being absent is "not available"; a missing
            # dependency inside it is a real error and must surface.
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            log.warning("no Pre-ETL for %s: module %s is not available", source, module_name)
            continue
        cls = getattr(module, class_name, None)
        if cls is None:
            log.warning("no Pre-ETL for %s: %s.%s is not defined", source, module_name, class_name)
            continue
        pre_etl: PreEtl = cls()
        declared = getattr(pre_etl, "source", source)
        if declared != source:
            raise ConfigError(
                f"{module_name}.{class_name} declares source {declared!r}, registered as {source!r}"
            )
        found[source] = pre_etl
    return found


def mapped_pre_etls(settings: Settings) -> dict[str, PreEtl]:
    """A :class:`tenpo.pos.mapped.MappedVendorPreEtl` per declarative POS vendor of ``settings``.

    A bad mapping file raises :class:`ConfigError` naming it: better not to start than to
    quarantine a vendor's every upload.
    """
    from tenpo.pos.mapped import load_mappings, mapping_dirs
    from tenpo.pos.vendors import declarative

    mappings = load_mappings(mapping_dirs(settings.data_dir, settings.vendor_mappings_dir))
    return _vendor_pre_etls({name: declarative(m) for name, m in mappings.items()})


def _vendor_pre_etls(vendors: Mapping[str, Vendor]) -> dict[str, PreEtl]:
    found: dict[str, PreEtl] = {}
    for vendor in vendors.values():
        for upload in vendor.uploads:
            pre_etl = upload.pre_etl()
            declared = getattr(pre_etl, "source", upload.source)
            if declared != upload.source:
                raise ConfigError(
                    f"vendor {vendor.key!r}: Pre-ETL {type(pre_etl).__name__} declares source "
                    f"{declared!r}, its upload lands {upload.source!r}"
                )
            found[upload.source] = pre_etl
    return found
