"""Consumption-tax arithmetic against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from tenpo.pos import _vector
from tenpo.pos.tax import added_tax, allocate, included_tax, split_inclusive


@pytest.mark.parametrize(
    ("amount", "rate", "rounding", "tax"),
    [
        (140, 8, "floor", 10),  # 140·0.08/1.08 = 10.37
        (270, 10, "floor", 24),  # 24.54
        (-270, 10, "floor", -24),  # sign of S
        (410, 10, "floor", 37),  # 37.27
        (410, 10, "round", 37),
        (410, 10, "ceil", 38),
        (105, 10, "floor", 9),  # 9.545
        (105, 10, "round", 10),
        (-105, 10, "round", -10),
        (108, 8, "ceil", 8),  # exact: 8.0 stays 8
        (500, 0, "floor", 0),
    ],
)
def test_included_tax(amount: int, rate: int, rounding: str, tax: int) -> None:
    assert included_tax(amount, rate, rounding) == tax  # type: ignore[arg-type]


def test_added_tax_in_cents() -> None:
    assert added_tax(25926, 8, scale=100) == 20  # floor(259.26 × 0.08 = 20.74)
    assert added_tax(25926, 8, scale=100, rounding="round") == 21
    assert added_tax(24000, 8, scale=100) == 19


@pytest.mark.parametrize(
    ("amounts", "rate", "excl", "taxes"),
    [
        ([140], 8, [130], [10]),
        ([100, 100, 101], 10, [91, 91, 92], [9, 9, 9]),  # 274 over 301: +1 to the .94 share
        ([50, 50], 8, [47, 46], [3, 4]),  # tie at .5: the earlier line gets the unit
        ([100, -100], 10, [91, -91], [9, -9]),  # lines cancel: exact zero in total
        ([-140, -270], 10, [-127, -246], [-13, -24]),  # S=-410: mirror of the sale
    ],
)
def test_split_inclusive_largest_remainder(
    amounts: list[int], rate: int, excl: list[int], taxes: list[int]
) -> None:
    got_excl, got_tax = split_inclusive(amounts, rate)
    assert (got_excl, got_tax) == (excl, taxes)
    assert sum(got_excl) + sum(got_tax) == sum(amounts)
    assert sum(got_tax) == included_tax(sum(amounts), rate)


def test_split_inclusive_per_line() -> None:
    # per receipt: floor(210·10/110) = 19; per line: 9 + 9
    assert split_inclusive([105, 105], 10)[1] in ([10, 9], [9, 10])
    assert sum(split_inclusive([105, 105], 10)[1]) == 19
    assert split_inclusive([105, 105], 10, per_line=True) == ([96, 96], [9, 9])


def test_allocate() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(19, [240]) == [19]
    assert allocate(0, [0, 0]) == [0, 0]
    assert allocate(5, [0, 0]) == [3, 2]
    assert allocate(-7, [1, 1]) == [-3, -4]
    assert sum(allocate(2000, [12963, 4567, 1])) == 2000


def test_vector_matches_scalar() -> None:
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(50), 4).astype(np.int64)
    amounts = rng.integers(-500, 3000, size=200).astype(np.int64)
    for g in range(50):
        rows = groups == g
        s = int(amounts[rows].sum())
        e = s - included_tax(s, 10)
        den = np.array([s if s else 110], dtype=np.int64)
        num = amounts[rows] * (e if s else 100)
        got = _vector.largest_remainder(
            np.zeros(4, dtype=np.int64), num, den, np.array([e], dtype=np.int64)
        )
        assert got.tolist() == split_inclusive(amounts[rows].tolist(), 10)[0]
