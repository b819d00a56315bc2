"""Dagster features tenpo relies on that Dagster 1.13 still labels "beta".

``observable_source_asset`` and ``BackfillPolicy`` have been stable in practice for many
releases and are the documented way to do what tenpo needs (versioned external tables,
single-run backfills). Their ``BetaWarning`` is expected and not actionable, so it is silenced
exactly where those features are used — not process-wide.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from dagster_shared.utils.warnings import BetaWarning


@contextmanager
def beta_features() -> Iterator[None]:
    """Silence Dagster's BetaWarning inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        yield
