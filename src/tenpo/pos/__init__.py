"""Pre-ETL for POS: vendor adapters, POS-master resolution, tax and validation.

The streamer imports the adapters directly; ``convert_files`` runs them offline
(``tenpo pos convert``).
"""

from __future__ import annotations

from tenpo.pos.convert import convert_files, offline_directory
from tenpo.pos.tax import Rounding
from tenpo.pos.vendor_a import VendorAMasterPreEtl, VendorAPreEtl
from tenpo.pos.vendor_b import VendorBPreEtl

__all__ = [
    "Rounding",
    "VendorAMasterPreEtl",
    "VendorAPreEtl",
    "VendorBPreEtl",
    "convert_files",
    "offline_directory",
]
