"""The default Pre-ETL registry: landing source name → the adapter that parses it.

Adapters are imported lazily, one by one, so the streamer runs (and quarantines that source's
objects as "no Pre-ETL") while an adapter's package is not installed or not written yet.
"""

from __future__ import annotations

import importlib
import logging

from tenpo.core.errors import ConfigError
from tenpo.core.preetl import PreEtl
from tenpo.core.settings import Settings

log = logging.getLogger(__name__)

# source -> (module, class); each class is constructible with no arguments.
DEFAULT_PRE_ETLS: dict[str, tuple[str, str]] = {
    "pos_vendor_a": ("tenpo.pos", "VendorAPreEtl"),
    "pos_vendor_a_master": ("tenpo.pos", "VendorAMasterPreEtl"),
    "pos_vendor_b": ("tenpo.pos", "VendorBPreEtl"),
    "iot": ("tenpo.iot", "IotPreEtl"),
    "visitor_events": ("tenpo.video", "VisitorEventsPreEtl"),
}


def default_pre_etls() -> dict[str, PreEtl]:
    """One instance of every available built-in Pre-ETL, keyed by its landing source.

    A missing module or class is logged and left out; an adapter that declares another
    ``source`` than its registry entry raises :class:`ConfigError`.
    """
    found: dict[str, PreEtl] = {}
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
    from tenpo.pos.mapped import MappedVendorPreEtl, load_mappings, mapping_dirs

    mappings = load_mappings(mapping_dirs(settings.data_dir, settings.vendor_mappings_dir))
    return {m.source: MappedVendorPreEtl(m) for m in mappings.values()}
