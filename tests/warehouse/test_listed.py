"""ListedParts: look-ups of listed parts answered from the listing, all else from the store."""

from __future__ import annotations

import collections
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.memory import MemoryFileSystem

from tenpo.warehouse.listed import ListedParts


class CountingFS(MemoryFileSystem):
    """An in-memory store that counts its look-ups (what would be HEAD requests)."""

    cachable = False

    def __init__(self) -> None:
        super().__init__()
        self.store = {}
        self.pseudo_dirs = [""]
        self.calls: collections.Counter[str] = collections.Counter()

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        self.calls["info"] += 1
        info: dict[str, Any] = super().info(path, **kwargs)
        return info

    def _open(self, path: str, mode: str = "rb", size: int | None = None, **kwargs: Any) -> Any:
        if size is None:  # an object store's file looks its size up (s3fs: a HEAD)
            self.calls["info"] += 1
        return super()._open(path, mode, **kwargs)

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kwargs: Any) -> Any:
        self.calls["get"] += 1
        return super().cat_file(path, start=start, end=end, **kwargs)

    def exists(self, path: str, **kwargs: Any) -> bool:
        self.calls["exists"] += 1
        return bool(super().exists(path, **kwargs))


def _part(fs: CountingFS, path: str, n: int) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"a": list(range(n))}), sink)
    fs.pipe_file(path, sink.getvalue().to_pybytes())


def test_listed_parts_are_read_without_a_look_up_and_new_parts_show_in_the_next_glob() -> None:
    fs = CountingFS()
    _part(fs, "/b/t/tenant=x/date=2026-01-01/p1.parquet", 3)
    _part(fs, "/b/t/tenant=y/date=2026-01-02/p2.parquet", 2)
    fs.pipe_file("/b/t/tenant=x/notes.txt", b"not a part")
    parts = ListedParts(fs)
    pattern = "/b/t/tenant=*/date=*/*.parquet"
    assert parts.glob(pattern) == fs.glob(pattern)
    fs.calls.clear()
    listed = "/b/t/tenant=x/date=2026-01-01/p1.parquet"
    assert parts.glob(listed) == [listed] and parts.exists(listed) and parts.isfile(listed)
    assert not parts.isdir(listed)
    assert parts.size(listed) == fs.size(listed)
    fs.calls.clear()
    for _ in range(3):
        with parts.open(listed) as fh:
            assert pq.read_table(fh).num_rows == 3
    assert parts.info(listed)["size"] == parts.size(listed)
    assert fs.calls == {"get": 1}  # no look-up of a listed part; its bytes read once
    # A part put after the listing: not known yet, so looked up; seen by the next glob.
    late = "/b/t/tenant=x/date=2026-01-03/p3.parquet"
    _part(fs, late, 1)
    assert parts.exists(late) and fs.calls["exists"] == 1
    assert late in parts.glob(pattern)
    assert not parts.exists("/b/t/tenant=x/date=2026-01-09/none.parquet")
    # Deleting through it forgets the part.
    parts.rm_file(late)
    assert late not in parts.glob(pattern) and not parts.exists(late)
