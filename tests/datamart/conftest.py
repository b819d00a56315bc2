"""Datamart test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tenpo.datamart import dispose_engines


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    """Each test's datamart URL is new; close its cached engine when the test ends."""
    yield
    dispose_engines()
