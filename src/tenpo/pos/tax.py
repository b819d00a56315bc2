"""Japanese consumption-tax arithmetic shared by the POS adapters (integers only, exact).

Amounts are integers in one unit (yen or cents) and rates are whole percents (10, 8, 0), so no
float or rounding context ever enters. The vendor rule, also tenpo's default, is: per receipt
and rate, with S the tax-inclusive sum, tax = floor(|S|·r/(1+r)) carrying the sign of S.
``rounding`` selects floor (default), round (half up) or ceil, always on the magnitude.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ROUNDINGS",
    "Rounding",
    "added_tax",
    "allocate",
    "included_tax",
    "split_inclusive",
]

Rounding = Literal["floor", "round", "ceil"]
ROUNDINGS: tuple[Rounding, ...] = ("floor", "round", "ceil")


def _divide(numerator: int, denominator: int, rounding: Rounding) -> int:
    """``numerator / denominator`` rounded as asked; both are ≥ 0, denominator > 0."""
    if rounding == "floor":
        return numerator // denominator
    if rounding == "ceil":
        return -(-numerator // denominator)
    if rounding == "round":
        return (2 * numerator + denominator) // (2 * denominator)
    raise ValueError(f"unknown rounding {rounding!r}; expected one of {', '.join(ROUNDINGS)}")


def included_tax(amount: int, rate_percent: int, rounding: Rounding = "floor") -> int:
    """Tax contained in the tax-inclusive ``amount``: rule(|amount|·r/(1+r)), sign of amount."""
    tax = _divide(abs(amount) * rate_percent, 100 + rate_percent, rounding)
    return -tax if amount < 0 else tax


def added_tax(amount: int, rate_percent: int, scale: int = 1, rounding: Rounding = "floor") -> int:
    """Tax on the tax-exclusive ``amount`` (in units of 1/``scale`` yen), in whole yen.

    ``added_tax(25926, 8, scale=100)`` is floor(259.26 × 0.08) = 20.
    """
    tax = _divide(abs(amount) * rate_percent, 100 * scale, rounding)
    return -tax if amount < 0 else tax


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` so the parts add up exactly (largest remainder).

    Each part is the floor of its exact share; the units left over go to the largest
    fractional remainders, earlier positions first on ties. Zero-sum weights split evenly.
    """
    if not weights:
        if total:
            raise ValueError(f"cannot allocate {total} over no weights")
        return []
    if len(weights) == 1:
        return [total]
    denominator = sum(weights)
    numerators = [w * total for w in weights]
    if denominator == 0:
        denominator = len(weights)
        numerators = [total] * len(weights)
    return _largest_remainder(numerators, denominator, total)


def _largest_remainder(numerators: list[int], denominator: int, total: int) -> list[int]:
    """Parts n_i/d rounded down, plus one for the largest remainders until they sum to total."""
    if denominator < 0:
        numerators = [-n for n in numerators]
        denominator = -denominator
    parts = [n // denominator for n in numerators]
    missing = total - sum(parts)
    if missing:
        # 0 < missing < len(parts) because the exact shares sum to ``total``.
        order = sorted(range(len(parts)), key=lambda i: (-(numerators[i] % denominator), i))
        for i in order[:missing]:
            parts[i] += 1
    return parts


def split_inclusive(
    amounts: list[int], rate_percent: int, rounding: Rounding = "floor", per_line: bool = False
) -> tuple[list[int], list[int]]:
    """Tax-exclusive amounts and taxes of the tax-inclusive lines of one receipt and rate.

    Per receipt (default): tax of the sum, exclusive amounts allocated by largest remainder so
    lines add up exactly. ``per_line``: each line's tax by the rule, the receipt is their sum.
    """
    if per_line:
        taxes = [included_tax(a, rate_percent, rounding) for a in amounts]
        return [a - t for a, t in zip(amounts, taxes, strict=True)], taxes
    total = sum(amounts)
    excl_total = total - included_tax(total, rate_percent, rounding)
    if total:
        excl = _largest_remainder([a * excl_total for a in amounts], total, excl_total)
    else:
        # Lines cancel out: share a_i/(1+r) of each line, allocated to an exact zero.
        excl = _largest_remainder([a * 100 for a in amounts], 100 + rate_percent, 0)
    return excl, [a - e for a, e in zip(amounts, excl, strict=True)]
