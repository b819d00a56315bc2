"""Dagster pipelines: partitioned assets wiring the jobs to the lake and the datamart.

``tenpo.pipelines.definitions.defs`` is the code location for ``dagster dev``;
:func:`materialize_dates` runs assets in process for the demo and ``tenpo jobs``.
"""

from tenpo.pipelines.resources import TenpoResource
from tenpo.pipelines.run import (
    DEFAULT_ASSETS,
    PipelineFailed,
    date_ranges,
    ensure_dagster_home,
    materialize_dates,
    materialize_ml,
)

__all__ = [
    "DEFAULT_ASSETS",
    "PipelineFailed",
    "TenpoResource",
    "date_ranges",
    "ensure_dagster_home",
    "materialize_dates",
    "materialize_ml",
]
