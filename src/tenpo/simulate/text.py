"""Text built a column at a time, rendered by one compiled loop, instead of per-record f-strings.

A :class:`Block` is ``n`` rows of text described, not yet written: a list of parts (a
literal, a string picked from a :class:`Table` by a per-row index, an integer, a decimal, or
rows of another block grouped by a per-row group number), each part optionally shown only on
rows where a mask holds, and the per-row integer columns those parts read. :meth:`Block.hcat`
puts blocks side by side, :meth:`Block.where` chooses per row, :meth:`Block.take` reorders
rows; nothing is formatted until :meth:`Block.tobytes` (or :meth:`Block.grouped`) runs the
numba-compiled renderer once over all rows, about a nanosecond a byte.

The formatters give exactly what Python's formatting gives (``str(int)``, ``f"{n:06d}"``,
``repr`` of a float that is a whole number of hundredths or thousandths), so files built this
way are byte-identical to the per-record writers they replace.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["Block", "Table"]

IntArray = npt.NDArray[np.int64]
ByteArray = npt.NDArray[np.uint8]

# Tables one render reads at most: passed as fixed-size tuples (a typed list would compile
# its own methods in every process, a second each).
_MAX_TABLES = 16
_NO_BUF = np.zeros(1, dtype=np.uint8)
_NO_OFF = np.zeros(2, dtype=np.int64)
# Part kinds of a block's spec.
_LIT, _PICK, _INT, _DEC, _AUX = 0, 1, 2, 3, 4


def _encode(text: str | bytes, encoding: str = "utf-8") -> bytes:
    return text if isinstance(text, bytes) else text.encode(encoding)


class Table:
    """Strings to pick by index, held as one buffer and offsets."""

    def __init__(self, strings: Sequence[str | bytes], encoding: str = "utf-8") -> None:
        lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
        if strings and isinstance(strings[0], str):
            joined = "".join(strings).encode(encoding)  # type: ignore[arg-type]
            if len(joined) != lengths.sum():  # not all ASCII: string by string
                raw = [_encode(s, encoding) for s in strings]
                joined = b"".join(raw)
                lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
        else:
            joined = b"".join(_encode(s, encoding) for s in strings)
        self.buf = np.frombuffer(joined or b"\0", dtype=np.uint8).copy()
        n = len(strings)
        self.offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.widest = int(lengths.max()) if n else 0

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @staticmethod
    def concat(tables: Sequence[Table]) -> tuple[Table, IntArray]:
        """One table of all ``tables``' strings, and where each table's first string is."""
        out = Table([])
        out.buf = np.concatenate([t.buf[: t.offsets[-1]] for t in tables] + [np.zeros(1, np.uint8)])
        sizes = np.array([len(t) for t in tables], dtype=np.int64)
        shift = np.cumsum([0] + [int(t.offsets[-1]) for t in tables])
        out.offsets = np.concatenate(
            [[0]] + [t.offsets[1:] + shift[i] for i, t in enumerate(tables)]
        ).astype(np.int64)
        out.widest = max((t.widest for t in tables), default=0)
        return out, np.cumsum(sizes) - sizes

    def pick(self, index: npt.ArrayLike) -> Block:
        """The strings at ``index``, one row each."""
        i = np.asarray(index, dtype=np.int64)
        if len(i) and (i.min() < 0 or i.max() >= len(self)):
            raise IndexError(f"index out of range for a table of {len(self)} strings")
        return Block(len(i), [(_PICK, self, 0, -1)], [i])


# A part: (kind, source, column, condition): source is the table, the literal, or the pad or
# places; column indexes the block's columns (-1: none); the part shows only on rows where
# column `condition` is non-zero (-1: always).
_Part = tuple[int, "Table | bytes | int", int, int]


class Block:
    """``n`` rows of text: parts (see the module docstring) and the columns they read."""

    __slots__ = ("columns", "n", "parts")

    def __init__(self, n: int, parts: list[_Part], columns: list[IntArray]) -> None:
        self.n, self.parts, self.columns = n, parts, columns

    def __len__(self) -> int:
        return self.n

    # -- building ----------------------------------------------------------------------
    @classmethod
    def of(cls, strings: Sequence[str | bytes], encoding: str = "utf-8") -> Block:
        """One row per string (for rows computed in Python)."""
        return Table(strings, encoding).pick(np.arange(len(strings)))

    @classmethod
    def literal(cls, n: int, text: str | bytes, encoding: str = "utf-8") -> Block:
        """``text`` on each of ``n`` rows."""
        return cls(n, [(_LIT, _encode(text, encoding), -1, -1)], [])

    @classmethod
    def ints(cls, values: npt.ArrayLike, pad: int = 0) -> Block:
        """Integers as ``str(v)``, or ``f"{v:0{pad}d}"`` (the width counts the sign)."""
        v = np.asarray(values, dtype=np.int64)
        return cls(len(v), [(_INT, pad, 0, -1)], [v])

    @classmethod
    def decimals(cls, units: npt.ArrayLike, places: int) -> Block:
        """``repr(units / 10**places)`` for integer ``units`` (places 1 to 6): the shortest
        repr of such a float is its decimal with trailing zeros dropped, one fraction digit
        kept ("3.0", "0.61")."""
        if not 1 <= places <= 6:
            raise ValueError("places must be 1 to 6")
        u = np.asarray(units, dtype=np.int64)
        return cls(len(u), [(_DEC, places, 0, -1)], [u])

    # -- combining -----------------------------------------------------------------------
    @staticmethod
    def hcat(*parts: Block | str | bytes) -> Block:
        """Fields side by side; a ``str``/``bytes`` part is the same literal on every row."""
        n = next(len(p) for p in parts if isinstance(p, Block))
        out_parts: list[_Part] = []
        columns: list[IntArray] = []
        for p in parts:
            block = p if isinstance(p, Block) else Block.literal(n, p)
            if len(block) != n:
                raise ValueError(f"blocks of {len(block)} and {n} rows side by side")
            shift = len(columns)
            out_parts += [_shifted(q, shift) for q in block.parts]
            columns += block.columns
        return Block(n, out_parts, columns)

    @staticmethod
    def where(mask: npt.ArrayLike, yes: Block, no: Block) -> Block:
        """Row by row, ``yes`` where ``mask`` holds, else ``no``."""
        m = np.asarray(mask, dtype=bool)
        return Block.hcat(yes._only(m), no._only(~m))

    @staticmethod
    def vcat(blocks: Sequence[Block]) -> Block:
        """Rows of ``blocks`` one after another."""
        total = sum(len(b) for b in blocks)
        parts: list[_Part] = []
        columns: list[IntArray] = []
        at = 0
        for b in blocks:
            mine = np.zeros(total, dtype=bool)
            mine[at : at + len(b)] = True
            widened = Block(total, b.parts, [_widen(c, at, total) for c in b.columns])._only(mine)
            shift = len(columns)
            parts += [_shifted(q, shift) for q in widened.parts]
            columns += widened.columns
            at += len(b)
        return Block(total, parts, columns)

    def take(self, index: npt.ArrayLike) -> Block:
        """Rows at ``index`` (a permutation or a selection)."""
        i = np.asarray(index, dtype=np.int64)
        return Block(len(i), self.parts, [c[i] for c in self.columns])

    def replace(self, rows: npt.ArrayLike, texts: Block) -> Block:
        """A copy with ``rows`` replaced by the rows of ``texts``."""
        r = np.asarray(rows, dtype=np.int64)
        if len(r) == 0:
            return self
        mask = np.zeros(self.n, dtype=bool)
        mask[r] = True
        where = np.zeros(self.n, dtype=np.int64)
        where[r] = np.arange(len(r))
        return Block.where(mask, texts.take(where) if len(texts) else texts, self)

    def grouped(self, counts: npt.ArrayLike) -> Block:
        """One row per group of consecutive rows (``counts`` rows each, 0 allowed): their
        text one after another. Renders this block now."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.sum() != self.n:
            raise ValueError(f"groups of {int(counts.sum())} rows over a block of {self.n}")
        buf, row_end = self._render()
        ends = np.concatenate([[0], row_end])[np.cumsum(counts)]
        aux = Table.__new__(Table)
        aux.buf = buf if len(buf) else np.zeros(1, np.uint8)
        aux.offsets = np.concatenate([[0], ends]).astype(np.int64)
        aux.widest = int(np.diff(aux.offsets).max()) if len(counts) else 0
        return Block(len(counts), [(_AUX, aux, 0, -1)], [np.arange(len(counts))])

    # -- output --------------------------------------------------------------------------
    def tobytes(self) -> bytes:
        """Every row's text, one after another."""
        return bytes(self._render()[0].tobytes())

    def render(self) -> tuple[ByteArray, IntArray]:
        """Every row's text one after another, and where each row ends in it."""
        return self._render()

    def _only(self, mask: npt.NDArray[np.bool_]) -> Block:
        """This block shown only where ``mask`` holds."""
        columns = list(self.columns)
        parts = []
        for kind, source, column, condition in self.parts:
            keep = mask if condition < 0 else mask & (columns[condition] != 0)
            columns.append(keep.astype(np.int64))
            parts.append((kind, source, column, len(columns) - 1))
        return Block(self.n, parts, columns)

    def _render(self) -> tuple[ByteArray, IntArray]:
        if self.n == 0:
            return np.zeros(0, np.uint8), np.zeros(0, np.int64)
        literals: list[bytes] = []
        tables: list[Table] = []
        table_id: dict[int, int] = {}
        spec = np.zeros((len(self.parts), 4), dtype=np.int64)
        cap = 0
        for k, (kind, source, column, condition) in enumerate(self.parts):
            if kind == _LIT:
                assert isinstance(source, bytes)
                a = len(literals)
                literals.append(source)
                width = len(source)
                cap += width * self.n
            elif kind in (_PICK, _AUX):
                assert isinstance(source, Table)
                a = table_id.setdefault(id(source), len(tables))
                if a == len(tables):
                    tables.append(source)
                # exact: a group of rows can be kilobytes, most are far shorter
                cap += int(np.diff(source.offsets)[self.columns[column]].sum())
            else:
                assert isinstance(source, int)
                a = source
                cap += 24 * self.n
            spec[k] = (kind, a, column, condition)
        lit = Table(literals)
        if len(tables) > _MAX_TABLES:
            raise ValueError(f"a block reads {len(tables)} tables, more than {_MAX_TABLES}")
        spare = _MAX_TABLES - len(tables)
        bufs = tuple(t.buf for t in tables) + (_NO_BUF,) * spare
        offs = tuple(t.offsets for t in tables) + (_NO_OFF,) * spare
        columns = (
            np.stack(self.columns, axis=1) if self.columns else np.zeros((self.n, 1), np.int64)
        )
        return _render(spec, columns, lit.buf, lit.offsets, bufs, offs, cap)


def _shifted(p: _Part, shift: int) -> _Part:
    kind, source, column, condition = p
    return (
        kind,
        source,
        column + shift if column >= 0 else -1,
        condition + shift if condition >= 0 else -1,
    )


def _widen(column: IntArray, at: int, total: int) -> IntArray:
    out = np.zeros(total, dtype=np.int64)
    out[at : at + len(column)] = column
    return out


@numba.njit(cache=True, nogil=True)
def _render(
    spec: IntArray,
    columns: IntArray,
    lit_buf: ByteArray,
    lit_off: IntArray,
    bufs: tuple[ByteArray, ...],
    offs: tuple[IntArray, ...],
    cap: int,
) -> tuple[ByteArray, IntArray]:  # pragma: no cover - compiled
    n = columns.shape[0]
    out = np.empty(cap, dtype=np.uint8)
    row_end = np.empty(n, dtype=np.int64)
    digits = np.empty(24, dtype=np.uint8)
    pos = 0
    for r in range(n):
        for k in range(spec.shape[0]):
            kind, a, col, cond = spec[k, 0], spec[k, 1], spec[k, 2], spec[k, 3]
            if cond >= 0 and columns[r, cond] == 0:
                continue
            if kind == 0:  # literal
                for j in range(lit_off[a], lit_off[a + 1]):
                    out[pos] = lit_buf[j]
                    pos += 1
            elif kind == 1 or kind == 4:  # a table's string
                i = columns[r, col]
                buf, off = bufs[a], offs[a]
                for j in range(off[i], off[i + 1]):
                    out[pos] = buf[j]
                    pos += 1
            else:
                v = columns[r, col]
                neg = v < 0
                u = -v if neg else v
                if kind == 2:  # integer, zero-padded to `a` characters with the sign
                    nd = 0
                    while True:
                        digits[nd] = 48 + u % 10
                        u //= 10
                        nd += 1
                        if u == 0:
                            break
                    if neg:
                        out[pos] = 45
                        pos += 1
                    for _ in range(a - nd - (1 if neg else 0)):
                        out[pos] = 48
                        pos += 1
                    for j in range(nd - 1, -1, -1):
                        out[pos] = digits[j]
                        pos += 1
                else:  # decimal with `a` places, trailing zeros dropped (one kept)
                    scale = 10**a
                    whole, frac = u // scale, u % scale
                    if neg:
                        out[pos] = 45
                        pos += 1
                    nd = 0
                    while True:
                        digits[nd] = 48 + whole % 10
                        whole //= 10
                        nd += 1
                        if whole == 0:
                            break
                    for j in range(nd - 1, -1, -1):
                        out[pos] = digits[j]
                        pos += 1
                    out[pos] = 46
                    pos += 1
                    places = a
                    while places > 1 and frac % 10 == 0:
                        frac //= 10
                        places -= 1
                    for j in range(places - 1, -1, -1):
                        out[pos + j] = 48 + frac % 10
                        frac //= 10
                    pos += places
        row_end[r] = pos
    return out[:pos], row_end
