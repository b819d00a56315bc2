"""Shared benchmark plumbing: every benchmark reports through :func:`report`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenpo.core.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(
    name: str,
    value: float,
    unit: str,
    baseline: float,
    target: float,
    higher_is_better: bool = True,
    floor: float | None = None,
    **extra: object,
) -> dict[str, object]:
    """Print one result line and write ``bench/results/<name>.json``.

    ``ratio`` is value/baseline (baseline/value when lower is better), so > 1 means faster than
    the baseline; ``met`` is ``ratio >= target`` and, with a ``floor`` (an absolute figure the
    value must reach too, in ``unit``), ``value >= floor``.
    """
    ratio = (value / baseline if higher_is_better else baseline / value) if value else 0.0
    meets_floor = floor is None or (value >= floor if higher_is_better else value <= floor)
    result: dict[str, object] = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "baseline": round(baseline, 3),
        "ratio": round(ratio, 2),
        "target": target,
        "met": ratio >= target and meets_floor,
        **({"floor": floor} if floor is not None else {}),
        **extra,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    mark = "met" if result["met"] else "NOT met"
    wanted = f"target {target}" + (f", floor {floor:,.0f} {unit}" if floor is not None else "")
    print(
        f"{name}: {value:,.1f} {unit} vs baseline {baseline:,.1f} {unit} "
        f"-> ratio {ratio:.2f} ({wanted}, {mark})"
    )
    return result


def pos_writer(settings: Settings) -> str:
    """A fresh control plane at ``settings`` with tenant t1, store S001 and a ``pos:write``
    key for them; returns the key (the POS upload benchmarks' sender)."""
    from tenpo.control import ControlPlane

    control = ControlPlane.open(settings.control_db_url)
    try:
        control.create_tenant("t1", "Bench")
        control.create_store("t1", "S001", "Bench store")
        _, token = control.create_api_key("t1", "bench", ["pos:write"])
    finally:
        control.dispose()
    return token
