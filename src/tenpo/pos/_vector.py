"""Vectorised (numpy int64) versions of the tax arithmetic in :mod:`tenpo.pos.tax`.

Same rules, exact integers; they work on all groups of an object at once. Callers must keep
magnitudes far below 2**63 (yen amounts times a rate or an amount: fine below ~10**9 yen).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tenpo.pos.tax import Rounding

Ints = npt.NDArray[np.int64]

SAFE = 1 << 62
"""Products and sums must stay below this to be exact in int64 (callers check)."""


def group_sum(groups: Ints, values: Ints, n_groups: int) -> Ints:
    """Σ values per group id (exact int64)."""
    out = np.zeros(n_groups, dtype=np.int64)
    np.add.at(out, groups, values)
    return out


def divide(numerator: Ints, denominator: Ints | int, rounding: Rounding) -> Ints:
    """Element-wise rounded division of non-negative numerators (see ``tax._divide``)."""
    if rounding == "floor":
        return numerator // denominator
    if rounding == "ceil":
        return -(-numerator // denominator)
    return (2 * numerator + denominator) // (2 * np.asarray(denominator, dtype=np.int64))


def included_tax(amounts: Ints, rates: Ints, rounding: Rounding) -> Ints:
    """Tax contained in tax-inclusive amounts: rule(|a|·r/(1+r)) with the sign of a."""
    tax = divide(np.abs(amounts) * rates, 100 + rates, rounding)
    return np.where(amounts < 0, -tax, tax)


def largest_remainder(groups: Ints, numerators: Ints, denominators: Ints, totals: Ints) -> Ints:
    """Per row: floor(numerator/denominator[g]) plus one for the rows with the largest
    remainders of each group g, until each group sums to totals[g] (ties: earlier rows).

    The exact shares of each group must add up to its total.
    """
    den = denominators[groups]
    num = np.where(den < 0, -numerators, numerators)
    den = np.abs(den)
    parts = num // den
    missing = totals - group_sum(groups, parts, len(totals))
    if not missing.any():
        return parts
    # Only the rows of groups that still miss units are ranked (often few of all rows).
    rows = np.flatnonzero(missing[groups] > 0)
    remainders = num[rows] - parts[rows] * den[rows]
    row_groups = groups[rows]
    span = int(den.max())
    if (int(row_groups.max()) + 1) * span < SAFE:
        # One stable sort of an int64 key: group, then remainder descending (ties: row order).
        order = np.argsort(row_groups * span + (span - 1 - remainders), kind="stable")
    else:
        order = np.lexsort((rows, -remainders, row_groups))  # by group, largest remainder, row
    sorted_groups = row_groups[order]
    starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
    rank = np.arange(len(rows)) - starts
    bump = rank < missing[sorted_groups]
    parts[rows[order[bump]]] += 1
    return parts
