"""Register weights stay valid when a moved register makes a store hold more than three."""

from __future__ import annotations

import numpy as np
import pytest

from tenpo.simulate.engine import _register_weights


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6])
def test_register_weights_are_a_distribution_of_the_right_size(n: int) -> None:
    w = _register_weights(n)
    assert w.shape == (n,)
    assert np.isclose(w.sum(), 1.0) and (w > 0).all()
    assert list(w) == sorted(w, reverse=True)


def test_first_three_registers_keep_their_shares() -> None:
    assert np.allclose(_register_weights(3), np.array([1.0, 0.7, 0.5]) / 2.2)
