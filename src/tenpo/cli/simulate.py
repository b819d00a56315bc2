"""`tenpo simulate`: write a simulated chain's source files and ground truth."""

from __future__ import annotations


def simulate() -> None:
    """Simulate a retail chain (filled in by the simulator work)."""
    raise NotImplementedError
