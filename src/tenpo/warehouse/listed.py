"""The lake's remote filesystem as the DuckDB warehouse registers it: Parquet parts answered
from their listing.

DuckDB reads an ``s3://`` (``gs://``) part through fsspec with a look-up per step: ``glob`` of
the file's own path (an ``exists``), ``open`` (an ``info``), ``size`` and ``modified`` (an
``info`` each), at bind time and again at execution — four or more HEAD requests per part
and query, for what the listing that found the part already said. Parts are immutable
(named by their content's hash), so within one warehouse what a listing told of a part
(size, last-modified time) stays true: :class:`ListedParts` remembers it from every listing
and answers those look-ups without a request. Listings themselves are never cached — a new
part shows in the next one — and a glob with wildcards is one recursive listing of its stem
instead of a listing per folder level.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.spec import AbstractBufferedFile
from fsspec.utils import glob_translate

_MAGIC = re.compile(r"[*?\[]")
WHOLE_READ_BYTES = 8 * 2**20
"""Listed parts up to this size are read whole, once per warehouse (see ``_whole``)."""
KEPT_BYTES = 128 * 2**20
"""At most this many bytes of whole parts are kept (the least recently read go first)."""


class ListedParts(AbstractFileSystem):
    """``fs`` (an object store's fsspec filesystem) with look-ups of listed objects answered
    from the listing; every other call goes to ``fs``."""

    cachable = False  # one per warehouse, never shared through fsspec's instance cache

    def __init__(self, fs: AbstractFileSystem) -> None:
        super().__init__()
        self.fs = fs
        self.protocol = fs.protocol
        self._s3 = "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        self._infos: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # DuckDB calls from its worker threads
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._kept_bytes = 0

    # -- what listings told -----------------------------------------------------------------
    def remember(self, infos: Mapping[str, Mapping[str, Any]]) -> None:
        """Record what a listing told of objects, by full path (with or without protocol)."""
        with self._lock:
            for path, info in infos.items():
                if info.get("type", "file") == "file" and "size" in info:
                    stripped = self.fs._strip_protocol(path)
                    self._infos[stripped] = dict(info, name=stripped)

    def _listed(self, path: str) -> dict[str, Any] | None:
        return self._infos.get(self.fs._strip_protocol(path))

    def find_listed(self, folder: str) -> dict[str, dict[str, Any]]:
        """Every object under ``folder`` (a full path, no protocol), remembered; by path.
        One listing request on S3 (the bucket listed with the folder as its prefix)."""
        bucket, _, key = folder.rstrip("/").partition("/")
        if self._s3 and key:
            found = self.fs.find(bucket, prefix=key + "/", detail=True)
        else:
            try:
                found = self.fs.find(folder, detail=True)
            except FileNotFoundError:
                found = {}
        files = {p: i for p, i in found.items() if i.get("type", "file") == "file"}
        self.remember(files)
        return files

    # -- look-ups answered from the listing -------------------------------------------------
    def glob(self, path: str, **kwargs: Any) -> Any:
        stripped = self.fs._strip_protocol(path)
        magic = _MAGIC.search(stripped)
        if kwargs or stripped.endswith("/"):
            return self.fs.glob(path, **kwargs)
        if magic is None:
            if self._listed(stripped) is not None:
                return [stripped]
            return self.fs.glob(path)
        # One recursive listing of the folder before the first wildcard, then the pattern.
        folder = stripped[: magic.start()].rsplit("/", 1)[0]
        if "**" in stripped or "/" not in stripped[: magic.start()]:
            return self.fs.glob(path)
        pattern = re.compile(glob_translate(stripped))
        return sorted(p for p in self.find_listed(folder) if pattern.match(p))

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        listed = self._listed(path)
        if listed is not None and not kwargs:
            return dict(listed)
        info: dict[str, Any] = self.fs.info(path, **kwargs)
        return info

    def size(self, path: str) -> int:
        listed = self._listed(path)
        return int(listed["size"]) if listed is not None else int(self.fs.size(path))

    def modified(self, path: str) -> Any:
        listed = self._listed(path)
        if listed is not None and "LastModified" in listed:
            return listed["LastModified"]
        return self.fs.modified(path)

    def exists(self, path: str, **kwargs: Any) -> bool:
        return self._listed(path) is not None or bool(self.fs.exists(path, **kwargs))

    def isfile(self, path: str) -> bool:
        return self._listed(path) is not None or bool(self.fs.isfile(path))

    def isdir(self, path: str) -> bool:
        return self._listed(path) is None and bool(self.fs.isdir(path))

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        listed = self._listed(path) if mode == "rb" else None
        if listed is not None:
            size = int(listed["size"])
            if size <= WHOLE_READ_BYTES and not kwargs:
                return io.BytesIO(self._whole(listed["name"], size))
            kwargs.setdefault("size", size)  # no look-up of the size
        handle = self.fs.open(path, mode, **kwargs)
        if listed is not None and isinstance(handle, AbstractBufferedFile):
            # What reads check the object against (s3fs: its ETag, so that a part replaced
            # mid-read fails): the listing's, instead of a look-up at the first read.
            handle.details = dict(listed)
        return handle

    def _whole(self, path: str, size: int) -> bytes:
        """The bytes of the small listed part ``path``: one GET the first time.

        DuckDB opens a part several times per query (binding, then each scan), and every
        open's footer, metadata and column reads are ranged GETs of their own; a part is
        immutable, so its bytes, read once, serve every later open of this warehouse.
        """
        with self._lock:
            data = self._kept.get(path)
            if data is not None:
                self._kept.move_to_end(path)
                return data
        # A ranged GET: a whole one looks the size up first (s3fs, for concurrent chunks).
        data = bytes(self.fs.cat_file(path, start=0, end=size)) if size else b""
        with self._lock:
            if path not in self._kept:
                self._kept[path] = data
                self._kept_bytes += len(data)
                while self._kept_bytes > KEPT_BYTES and len(self._kept) > 1:
                    _, dropped = self._kept.popitem(last=False)
                    self._kept_bytes -= len(dropped)
        return data

    # -- everything else: the filesystem's own ----------------------------------------------
    def _strip_protocol(self, path: str) -> str:
        stripped: str = self.fs._strip_protocol(path)
        return stripped

    def unstrip_protocol(self, name: str) -> str:
        unstripped: str = self.fs.unstrip_protocol(name)
        return unstripped

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        return self.fs.ls(path, detail=detail, **kwargs)

    def find(self, path: str, *args: Any, **kwargs: Any) -> Any:
        return self.fs.find(path, *args, **kwargs)

    def cat_file(self, path: str, *args: Any, **kwargs: Any) -> Any:
        return self.fs.cat_file(path, *args, **kwargs)

    def pipe_file(self, path: str, *args: Any, **kwargs: Any) -> Any:
        return self.fs.pipe_file(path, *args, **kwargs)

    def rm_file(self, path: str) -> Any:
        with self._lock:
            stripped = self.fs._strip_protocol(path)
            self._infos.pop(stripped, None)
            dropped = self._kept.pop(stripped, None)
            self._kept_bytes -= len(dropped or b"")
        return self.fs.rm_file(path)

    def rm(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._infos.clear()
            self._kept.clear()
            self._kept_bytes = 0
        return self.fs.rm(path, *args, **kwargs)

    def mkdir(self, path: str, *args: Any, **kwargs: Any) -> Any:
        return self.fs.mkdir(path, *args, **kwargs)

    def makedirs(self, path: str, *args: Any, **kwargs: Any) -> Any:
        return self.fs.makedirs(path, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "fs":  # not set yet (during __init__)
            raise AttributeError(name)
        return getattr(self.fs, name)
