"""The column-at-a-time text builder gives exactly what Python's formatting gives."""

from __future__ import annotations

import numpy as np
import pytest

from tenpo.simulate.text import Block, Table


def rows(block: Block) -> list[str]:
    """Each row's text (rows end with a separator byte that the text never holds)."""
    return Block.hcat(block, "\x01").tobytes().decode().split("\x01")[:-1]


RNG = np.random.default_rng(0)
INTS = np.concatenate(
    [RNG.integers(-(10**9), 10**9, 5000), np.arange(-1200, 1200), [0, -1, 1, 10**15, -(2**62)]]
)


def test_integers_as_str_and_zero_padded() -> None:
    assert rows(Block.ints(INTS)) == [str(v) for v in INTS.tolist()]
    for pad in (1, 2, 5, 6, 7):
        assert rows(Block.ints(INTS, pad)) == [f"{v:0{pad}d}" for v in INTS.tolist()]


@pytest.mark.parametrize("places", [2, 3])
def test_decimals_as_the_repr_of_the_float(places: int) -> None:
    units = np.concatenate([np.arange(-3000, 3000), RNG.integers(0, 10**8, 20_000)])
    assert rows(Block.decimals(units, places)) == [repr(u / 10**places) for u in units.tolist()]
    # numpy's round(x, p) is rint(x·10^p) / 10^p: its repr is the decimal of rint(x·10^p)
    x = RNG.uniform(0, 12, 20_000)
    k = np.rint(x * 10**places).astype(np.int64)
    assert rows(Block.decimals(k, places)) == [repr(v) for v in x.round(places).tolist()]


def test_combining_rows() -> None:
    b = Block.hcat(Block.ints([1, 22, 333]), ",", Table(["a", "bb", "売"]).pick([2, 0, 1]))
    assert rows(b) == ["1,売", "22,a", "333,bb"]
    assert b.tobytes() == "1,売22,a333,bb".encode()
    grouped = Block.hcat(Table(["a", "bb", "ccc", "d"]).pick([0, 1, 2, 3, 0]), ";").grouped(
        [2, 0, 3]
    )
    assert rows(Block.hcat("<", grouped, ">")) == ["<a;bb;>", "<>", "<ccc;d;a;>"]
    stacked = Block.vcat([Block.ints([5, 6]), Block.of(["xyz"]), Block.ints([])])
    assert rows(stacked.take([2, 0, 1])) == ["xyz", "5", "6"]
    assert rows(Block.of(["aa", "bb", "cc"]).replace([1], Block.of(["longer"]))) == [
        "aa",
        "longer",
        "cc",
    ]
    inner = Block.where([False, True, True], Block.literal(3, "A"), Block.literal(3, "B"))
    assert rows(Block.where([True, True, False], inner, Block.literal(3, "C"))) == ["B", "A", "C"]
    assert Table(["売上"], "cp932").pick([0, 0]).tobytes() == "売上売上".encode("cp932")


def test_out_of_range_picks_are_refused() -> None:
    with pytest.raises(IndexError, match="table of 1 strings"):
        Table(["a"]).pick([1])
