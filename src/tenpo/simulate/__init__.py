"""Realistic synthetic retail chains with ground truth (``tenpo simulate``).

:func:`simulate_chain` builds a chain in memory (tenants, stores drawn from planted
archetypes, devices, registers, and per store-day traffic, visits and receipts);
:func:`write_chain` writes it exactly as the sources would send it (FORMATS.md) plus the
true KPIs under ``truth/``; :func:`simulate` does both.

Conventions the truth relies on:
- people counters count customers only (staff use the staff entrance and are filtered);
  the RGB camera sees staff too, with enrolled PersonIDs listed in ``truth/staff.csv``;
- ``passersby`` = in + out at the ``passby`` line (people walking past either way);
- a store has no files and no truth row on a day it is closed.
"""

from __future__ import annotations

from pathlib import Path

from tenpo.simulate.config import SimConfig
from tenpo.simulate.engine import Progress, simulate_chain
from tenpo.simulate.model import (
    Chain,
    Device,
    Register,
    Sales,
    Sku,
    StaffMember,
    Store,
    StoreDay,
    Tenant,
    Traffic,
)
from tenpo.simulate.truth import DailyTruth, daily_truth
from tenpo.simulate.writers import Manifest, ManifestEntry, simulate_to_dir, write_chain

__all__ = [
    "Chain",
    "DailyTruth",
    "Device",
    "Manifest",
    "ManifestEntry",
    "Register",
    "Sales",
    "SimConfig",
    "Sku",
    "StaffMember",
    "Store",
    "StoreDay",
    "Tenant",
    "Traffic",
    "daily_truth",
    "simulate",
    "simulate_chain",
    "simulate_to_dir",
    "write_chain",
]


def simulate(
    config: SimConfig,
    out_dir: Path,
    on_progress: Progress | None = None,
) -> Manifest:
    """Simulate ``config`` and write its files and truth under ``out_dir``; returns the manifest.

    ``on_progress(done, total)`` is called per business date, for generation then writing.
    """
    chain = simulate_chain(config, on_progress=on_progress)
    return write_chain(chain, out_dir, on_progress=on_progress)
