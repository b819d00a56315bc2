"""A small simulated chain written once per test session (shared by the format tests)."""

from __future__ import annotations

import pytest

from tenpo.simulate import Chain, Manifest, SimConfig, simulate_chain, write_chain

SMALL = SimConfig(seed=11, tenants=2, stores=6, days=8, traffic_scale=0.3)


@pytest.fixture(scope="session")
def small_chain() -> Chain:
    """Two tenants (vendor A and B), six stores, eight days, light traffic."""
    return simulate_chain(SMALL)


@pytest.fixture(scope="session")
def small_out(small_chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """``small_chain`` written to a session folder."""
    return write_chain(small_chain, tmp_path_factory.mktemp("sim"))
