"""The simulator's output pinned by a digest: speed-ups must not change a single byte.

Every downstream figure (the demo's and the scale harness's exact KPI checks, the ML
back-tests' floors) rests on the simulator's random stream and file layout. This chain
covers every writer and branch: both POS vendors (quirks, a moved register), people
counters at 1 and 15 minutes with gaps, ToF cameras, RGB cameras (staff, regulars, cross-store
visits), and stores in London and New York over their fall-back nights. If a change is meant
to alter the output, say so in its commit and update the digest with the reason.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tenpo.simulate import SimConfig, simulate, simulate_to_dir

PINNED = SimConfig(
    seed=3,
    tenants=2,
    stores=8,
    days=12,
    start_date=date(2026, 10, 22),  # London falls back on 10-25, New York on 11-01
    traffic_scale=0.3,
    rgb_camera_share=0.5,
    tof_camera_share=0.5,
    one_minute_counter_share=0.5,
    device_gap_rate=0.3,
    dst_store_share=0.5,
    quirk_rate=0.1,
)
# sha256 of every file (path and bytes, sorted by path), the truth Parquet by its rows
# (its bytes name the pyarrow version that wrote it).
PINNED_DIGEST = "6eb7a8c1f9a5dd2dbf156dd99d30cce193b037b4816d1ca69bdd302a4db63cea"


def tree_digest(root: Path) -> str:
    """The digest of a simulation folder (see ``PINNED_DIGEST``)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".parquet":
            data = repr(pq.read_table(path).to_pylist()).encode()
        else:
            data = path.read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def test_the_pinned_chain_is_byte_identical(tmp_path: Path) -> None:
    simulate(PINNED, tmp_path / "sim")
    assert tree_digest(tmp_path / "sim") == PINNED_DIGEST


@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_writing_gives_the_pinned_bytes(tmp_path: Path, workers: int) -> None:
    simulate_to_dir(PINNED, tmp_path / "sim", workers=workers)
    assert tree_digest(tmp_path / "sim") == PINNED_DIGEST
