"""`tenpo demo`: the end-to-end run on embedded defaults."""

from __future__ import annotations


def demo() -> None:
    """Run the demo (filled in by the demo work)."""
    raise NotImplementedError
