"""The ``Lake`` interface and its fsspec implementation (local folder, s3://, gs://)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import logging
import os
import sys
import threading
import time
import uuid
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tenpo.core.errors import LakeError
from tenpo.lake.journal import CREATE, JOURNAL_DIR, PUT, UNCHECKED_PUT, Journal, recover

log = logging.getLogger(__name__)

# Conditional puts retried on S3's 409 (another conditional put of the key in flight).
_CONFLICT_RETRIES = 5


class Lake(ABC):
    """Object storage addressed by keys relative to a root. Puts are atomic."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically: readers see the old object or the new one."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` unless ``key`` exists; True when written.

        Atomic: of concurrent callers (threads, processes, hosts) exactly one gets True, and
        the stored object is that caller's bytes, complete.
        """

    def put_if_absent_unsynced(self, key: str, data: bytes) -> bool:
        """Like :meth:`put_if_absent`, but durable only once a later :meth:`sync` returns.

        For group commit: many callers write, one :meth:`sync` makes all their writes
        durable, and none of them acknowledges its write before that. Readers of this
        process see the object at once. Lakes whose puts are durable when they return
        (object stores) simply put.
        """
        return self.put_if_absent(key, data)

    def put_unsynced(self, key: str, data: bytes) -> None:
        """Like :meth:`put`, but durable only once a later :meth:`sync` returns."""
        self.put(key, data)

    def keep_unsynced(self, key: str, data: bytes) -> None:  # noqa: B027 - see below
        """Make sure the next :meth:`sync` covers ``key``, which already holds ``data``.

        For an answer that relies on an object found in place (a re-send): its own unsynced
        write may not be durable yet. Lakes whose puts are durable when they return do nothing.
        """

    def sync(self) -> None:  # noqa: B027 - durable at once unless a subclass defers
        """Make every ``*_unsynced`` write that returned before this call durable.

        :class:`LakeError` when the storage reports a write-back error.
        """

    def checkpoint(self) -> None:  # noqa: B027 - nothing deferred unless a subclass defers
        """Sync, then make the unsynced writes durable in place, so that nothing depends on a
        write-ahead journal any more (a clean shutdown of the gateway)."""

    def close(self) -> None:
        """:meth:`checkpoint`, then release what the lake holds open; not used afterwards."""
        self.checkpoint()

    def exclusive(self) -> contextlib.AbstractContextManager[object]:
        """A lock held against every other holder of this lake's, in any process of this
        host (a local lake's is a ``flock``): for the rare repair of an object a crash left
        damaged, which two writers must not both do. Lakes whose puts are atomic and durable
        when they return (object stores) never hold a damaged object: a process lock."""
        return _PROCESS_LOCK

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes at ``key``; :class:`LakeError` when missing."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (recursive), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object at ``key``; no error when it is already gone."""

    @abstractmethod
    def path(self, key: str) -> str:
        """The full URL or path of ``key``, for engines that read it directly (DuckDB, Arrow)."""

    @property
    @abstractmethod
    def filesystem(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem behind the lake (for pyarrow datasets)."""

    @property
    @abstractmethod
    def root(self) -> str:
        """The root URL or folder."""


class FsspecLake(Lake):
    """A lake over any fsspec filesystem; the root URL's protocol picks the filesystem.

    Local puts write a temporary file in the same folder, fsync it and rename it over the key,
    so a crash never leaves a partial object. Object stores (S3, GCS) make single puts atomic
    themselves. Local ``*_unsynced`` puts skip the fsyncs and append the key and bytes to this
    process's write-ahead journal (:mod:`tenpo.lake.journal`); :meth:`sync` makes them durable
    with one ``fdatasync`` of the journal, and a background checkpoint later makes the objects
    durable in place (``syncfs`` on Linux, elsewhere an fsync of each file and folder). A crash
    before the sync may leave such an object empty or missing, which is why nobody
    acknowledges it before (:mod:`tenpo.lake.commit`); after the sync, opening the lake again
    (any process) replays the journal of a writer that is gone.
    """

    def __init__(self, root: str, **storage_options: object) -> None:
        if root.startswith(("s3://", "s3a://")):
            # Another process's puts must show in our listings (the streamer lists what the
            # gateway landed): s3fs would otherwise cache a folder's listing for good.
            storage_options.setdefault("use_listings_cache", False)
        fs, path = fsspec.core.url_to_fs(root, **storage_options)
        self._fs: fsspec.AbstractFileSystem = fs
        self._local = isinstance(fs, LocalFileSystem)
        self._root = path.rstrip("/")
        self._protocol = root.split("://", 1)[0] if "://" in root else ""
        self._journal: Journal | None = None
        self._journal_lock = threading.Lock()
        self._folders: set[str] = set()
        """Folders known to exist (a put there skips the look-up; see :meth:`_makedirs`)."""
        self._inodes: _InodePool | None = None
        _LAKES.add(self)
        """Nameless files made ahead for unsynced creates (opened with the journal)."""
        self._syncfs_handle: _SyncfsHandle | None = None
        if self._local:
            try:
                _makedirs_durably(self._root)
                if _SYNCFS is not None:
                    # Opened before any write of this lake: errors of later write-backs are
                    # reported to it (a descriptor opened later misses those before it).
                    self._syncfs_handle = _SyncfsHandle(self._root)
                    weakref.finalize(self, self._syncfs_handle.close)
            except OSError as exc:
                raise LakeError(f"cannot open the lake at {self._root}: {exc}") from exc
            try:
                self.recovered = self._recover_journal()
            except OSError as exc:  # e.g. a read-only or full disk: a dead writer's acked
                raise LakeError(  # writes cannot be restored, so the lake is not opened
                    f"cannot replay the journal of a dead writer under {self._journal_dir}: {exc}"
                ) from exc
            """Journal segments of gone writers replayed when this lake was opened."""

    @property
    def filesystem(self) -> fsspec.AbstractFileSystem:
        return self._fs

    @property
    def root(self) -> str:
        return self._root if self._local else f"{self._protocol}://{self._root}"

    def _full(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise LakeError(f"invalid lake key: {key!r}")
        return f"{self._root}/{key}"

    def path(self, key: str) -> str:
        full = self._full(key)
        return full if self._local else f"{self._protocol}://{full}"

    def put(self, key: str, data: bytes) -> None:
        self._put(key, data, durable=True)

    def put_unsynced(self, key: str, data: bytes) -> None:
        self._put(key, data, durable=False)

    def _put(self, key: str, data: bytes, *, durable: bool) -> None:
        full = self._full(key)
        try:
            if self._local:
                folder = os.path.dirname(full)
                created = self._makedirs(folder, durable)
                replaced = None if durable else _digest_of(full)
                _replace_local(full, data, durable=durable)
                if not durable:
                    self._journaled(PUT, key, data, full, folder, *created, replaced=replaced)
            else:
                self._fs.pipe_file(full, data)
        except OSError as exc:
            raise LakeError(f"cannot write {key}: {exc}") from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._put_if_absent(key, data, durable=True)

    def put_if_absent_unsynced(self, key: str, data: bytes) -> bool:
        return self._put_if_absent(key, data, durable=False)

    def _put_if_absent(self, key: str, data: bytes, *, durable: bool) -> bool:
        full = self._full(key)
        try:
            if self._local:
                folder = os.path.dirname(full)
                folders = self._makedirs(folder, durable)
                pool = None if durable else self._inode_pool()
                try:
                    created = _create_local(full, data, durable=durable, pool=pool)
                except FileNotFoundError:  # the folder was removed since it was remembered
                    self._folders.discard(folder)
                    folders = self._makedirs(folder, durable)
                    created = _create_local(full, data, durable=durable, pool=pool)
                if created and not durable:
                    self._journaled(CREATE, key, data, full, folder, *folders)
                return created
            # Object stores: a conditional put (S3 If-None-Match: *, GCS if-generation-match 0)
            # where the fsspec backend implements mode="create".
            self._conditional_put(full, data)
        except FileExistsError:
            return False
        except OSError as exc:
            raise LakeError(f"cannot write {key}: {exc}") from exc
        return True

    def _conditional_put(self, full: str, data: bytes) -> None:
        """Create ``full`` unless it exists (``FileExistsError``), on an object store.

        S3 answers 409 ConditionalRequestConflict while another conditional put of the key
        is in flight: retried, the put then fails with 412 (exists) or succeeds.
        """
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._fs.pipe_file(full, data, mode="create")
                return
            except FileExistsError:
                raise
            except OSError as exc:
                if "ConditionalRequestConflict" not in str(exc) or attempt + 1 == _CONFLICT_RETRIES:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def keep_unsynced(self, key: str, data: bytes) -> None:
        if self._local:
            full = self._full(key)
            try:
                self._journaled(CREATE, key, data, full, os.path.dirname(full))
            except OSError as exc:
                raise LakeError(f"cannot journal {key}: {exc}") from exc

    def sync(self) -> None:
        journal = self._journal
        if journal is None:
            return
        try:
            journal.sync()
        except OSError as exc:
            raise LakeError(f"cannot make the lake's writes durable: {exc}") from exc

    def checkpoint(self) -> None:
        with self._journal_lock:
            journal, self._journal = self._journal, None
            inodes, self._inodes = self._inodes, None
        if inodes is not None:
            inodes.close()
        if journal is None:
            return
        try:
            journal.close()
        except OSError as exc:
            raise LakeError(f"cannot make the lake's writes durable: {exc}") from exc

    def close(self) -> None:
        """Checkpoint (:meth:`checkpoint`), then release the descriptor the lake keeps open
        for ``syncfs``; the lake must not be used afterwards."""
        try:
            self.checkpoint()
        finally:
            if self._syncfs_handle is not None:
                self._syncfs_handle.close()

    def _after_fork(self) -> None:
        """In a forked child (the only thread there): the parent's journal and inode pool
        stay the parent's. Written on here, the journal's segment — at the same offsets as
        the parent's next records, and under a ``flock`` the two processes would share —
        would lose one process's acknowledged records to the other's. The child journals
        into segments of its own, made on first use."""
        journal, self._journal = self._journal, None
        self._inodes = None  # (marked forked by the pool's own hook: never taken from)
        self._journal_lock = threading.Lock()  # another thread may have held it at the fork
        if journal is not None:
            journal.forget()
        if self._syncfs_handle is not None:
            self._syncfs_handle.after_fork()

    def exclusive(self) -> contextlib.AbstractContextManager[object]:
        if not self._local:
            return _PROCESS_LOCK
        return self._flocked()

    def _recover_journal(self) -> int:
        """Replay dead writers' journal segments, under the lake's lock.

        Another process opening the lake at the same time (after a power loss every gateway
        worker and the streamer restart together) holds the segments it is replaying locked,
        and a locked segment is skipped as a live writer's: without the lock this opener
        would serve — repair a claim, read an object — before those acknowledged writes are
        back. With it, the second opener waits until the first has replayed everything."""
        if not os.path.isdir(self._journal_dir):
            return 0  # no writer ever journaled here
        try:
            fd = os.open(_lock_path(self._journal_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        except OSError:
            fd = -1  # a read-only lake: replay (if any is needed) fails below, as before
        try:
            if fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_EX)
            return recover(self._journal_dir, self._replay, self._make_durable)
        finally:
            if fd >= 0:
                os.close(fd)

    @contextlib.contextmanager
    def _flocked(self) -> Iterator[None]:
        # An open file description of its own per holder: flock then also excludes the
        # other threads of this process.
        try:
            os.makedirs(self._journal_dir, exist_ok=True)
            fd = os.open(_lock_path(self._journal_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        except OSError as exc:
            raise LakeError(f"cannot lock the lake at {self._root}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _inode_pool(self) -> _InodePool | None:
        """The pool of nameless files for unsynced creates (Linux), made on first use."""
        if not _TMPFILE_LINKS:
            return None
        pool = self._inodes
        if pool is None:
            with self._journal_lock:
                if self._inodes is None:
                    self._inodes = _InodePool(self._root)
                    weakref.finalize(self, self._inodes.close)
                pool = self._inodes
        return pool

    @property
    def _journal_dir(self) -> str:
        return f"{self._root}/{JOURNAL_DIR}"

    def _journaled(
        self, op: int, key: str, data: bytes, *touched: str, replaced: bytes | None = None
    ) -> None:
        """Append an unsynced write to the journal (opened on first use)."""
        journal = self._journal
        if journal is None:
            with self._journal_lock:
                if self._journal is None:
                    self._journal = Journal(self._journal_dir, self._make_durable)
                journal = self._journal
        journal.append(op, key, data, touched, replaced)

    def _make_durable(self, paths: set[str]) -> None:
        """Make files and folders durable in place: one ``syncfs`` (Linux) or an fsync of
        each, files before folders (a folder's fsync makes the names in it durable)."""
        if self._syncfs_handle is not None:
            self._syncfs_handle.syncfs()
            return
        for path in sorted(paths, key=os.path.isdir):
            with contextlib.suppress(FileNotFoundError):  # replaced or deleted since
                _fsync_path(path)

    def _replay(self, op: int, key: str, data: bytes, replaced: bytes | None) -> list[str]:
        """Restore one journal record's object (recovery); the paths it wrote.

        The object is written again when it is missing, empty or cut short (what a crash
        leaves of an unsynced write), or, for a PUT, when it still holds the bytes the PUT
        replaced (its rename was lost). Other bytes are a later write's: left alone.

        An object that reads back intact is returned too: a writer killed after its sync
        (SIGKILL, OOM; not a power loss) leaves it in the page cache, maybe not on disk, and
        the segment about to be deleted is its only durable copy. So are the folders up to
        the root, whose names the writer may not have synced either. Its bytes are written
        again in place (same inode: a concurrent rename over the key is unharmed): after a
        write-back error — the reason a live writer keeps a segment for recovery — the page
        cache can hold bytes the disk does not, clean, so a ``syncfs`` would not write them,
        and the error was reported to the writer's descriptor, not to ours.
        """
        full = self._full(key)
        folder = os.path.dirname(full)
        if op != UNCHECKED_PUT:
            kept = _read_rewriting(full, data)
            if kept == data:
                return [full, *self._ancestors(folder)]
            if (
                kept is not None
                and not (len(kept) < len(data) and data.startswith(kept))
                and (op != PUT or replaced is None or hashlib.sha256(kept).digest() != replaced)
            ):
                log.warning("journal replay: %s holds other bytes; left as it is", key)
                return []
        self._makedirs(folder, durable=False)
        _replace_local(full, data, durable=False)
        log.warning("journal replay restored %s (%d bytes)", key, len(data))
        return [full, *self._ancestors(folder)]

    def _ancestors(self, folder: str) -> list[str]:
        """``folder`` and every folder above it up to the root (each holds the next's name)."""
        out = [folder]
        while folder != self._root and folder.startswith(self._root + "/"):
            folder = os.path.dirname(folder)
            out.append(folder)
        return out

    def _makedirs(self, folder: str, durable: bool) -> list[str]:
        """Create ``folder`` and its missing parents; their new names are synced too (when
        ``durable``; else the folders whose entries changed are returned, for the journal).

        A folder seen once is remembered, so the hot path (many objects into one date
        folder) pays no look-up per put.
        """
        if folder in self._folders:
            return []
        if os.path.isdir(folder):
            self._folders.add(folder)
            return []
        missing = []
        parent = folder
        while parent != self._root and not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        os.makedirs(folder, exist_ok=True)
        # A new folder's name lives in its parent: that parent needs a sync as well.
        created = [os.path.dirname(m) for m in missing]
        if durable:
            for path in created:
                _fsync_path(path)
        self._folders.add(folder)
        return created

    def get(self, key: str) -> bytes:
        try:
            if self._local:  # what fsspec's cat_file does, without its layers
                with open(self._full(key), "rb") as fh:
                    return fh.read()
            data: bytes = self._fs.cat_file(self._full(key))
        except FileNotFoundError as exc:
            raise LakeError(f"no object at {key}") from exc
        except OSError as exc:
            raise LakeError(f"cannot read {key}: {exc}") from exc
        return data

    def exists(self, key: str) -> bool:
        return bool(self._fs.exists(self._full(key)))

    def list(self, prefix: str) -> list[str]:
        try:
            found = self._find(self._full(prefix).rstrip("/"))
        except FileNotFoundError:
            return []
        n = len(self._root) + 1
        keys = (str(p)[n:] if str(p).startswith(self._root) else str(p) for p in found)
        return sorted(
            k
            for k in keys
            if not k.rsplit("/", 1)[-1].startswith(".tmp-") and not k.startswith(_JOURNAL_KEYS)
        )

    def list_info(self, prefix: str) -> dict[str, dict[str, object]]:
        """Like :meth:`list`, with what the listing tells of each object (fsspec's info:
        ``size``, ``LastModified``, ...), by key; remote lakes only (a local listing would
        pay a ``stat`` per file)."""
        if self._local:
            raise LakeError("list_info is for remote lakes")
        try:
            found = self._find(self._full(prefix).rstrip("/"), detail=True)
        except FileNotFoundError:
            return {}
        n = len(self._root) + 1
        return {
            str(p)[n:]: info
            for p, info in sorted(found.items())
            if not str(p).rsplit("/", 1)[-1].startswith(".tmp-")
            and not str(p)[n:].startswith(_JOURNAL_KEYS)
        }

    def _find(self, base: str, *, detail: bool = False) -> Any:
        """Every object under folder ``base`` (a full path): one listing request on S3.

        s3fs's ``find`` of a key that lists empty falls back to a look-up of the key as an
        object (a HEAD and a second listing): three requests for every empty folder. A
        listing of the bucket with the folder as its prefix (``key/``) has no fallback.
        """
        if self._protocol in ("s3", "s3a"):
            bucket, _, key = base.partition("/")
            if key:
                return self._fs.find(bucket, prefix=key + "/", detail=detail)
        return self._fs.find(base, detail=detail)

    def iter_prefix(self, prefix: str) -> Iterator[str]:
        """Like :meth:`list`, lazily."""
        yield from self.list(prefix)

    def delete(self, key: str) -> None:
        try:
            self._fs.rm_file(self._full(key))
        except FileNotFoundError:
            pass


_JOURNAL_KEYS = JOURNAL_DIR + "/"
_PROCESS_LOCK = threading.Lock()
"""What :meth:`Lake.exclusive` holds where no cross-process lock is needed."""


def _lock_path(journal_dir: str) -> str:
    """The file a local lake's :meth:`~Lake.exclusive` locks (in the journal's folder, which
    holds no objects; recovery looks only at segments)."""
    return os.path.join(journal_dir, "lake.lock")


def _read_rewriting(full: str, data: bytes) -> bytes | None:
    """The bytes at ``full`` (None when missing); when they equal ``data``, written again in
    place, so that they are dirty in the page cache (see :meth:`FsspecLake._replay`)."""
    try:
        fd = os.open(full, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except PermissionError:  # (not ours to write: only read, as before)
        with open(full, "rb") as fh:
            return fh.read()
    with open(fd, "r+b") as fh:
        kept = fh.read()
        if kept == data:
            fh.seek(0)
            fh.write(data)
    return kept


def _digest_of(full: str) -> bytes | None:
    """The SHA-256 of the file at ``full``; None when there is none."""
    try:
        with open(full, "rb") as fh:
            return hashlib.sha256(fh.read()).digest()
    except FileNotFoundError:
        return None


def _replace_local(full: str, data: bytes, *, durable: bool) -> None:
    """Write ``data`` to a temporary file beside ``full`` (fsynced when ``durable``) and rename
    it over ``full``: readers see the old object or the new one, never a part."""
    tmp = os.path.join(os.path.dirname(full), f".tmp-{uuid.uuid4().hex}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, full)


def _create_local(
    full: str, data: bytes, *, durable: bool = True, pool: _InodePool | None = None
) -> bool:
    """Create ``full`` with ``data`` unless it exists, atomically (and durably if asked).

    The bytes go to a temporary file first (fsynced when ``durable``; on Linux a nameless
    ``O_TMPFILE`` one, elsewhere a ``.tmp-`` name in the folder), which is then
    hard-linked to the key: ``link`` fails when the key exists, so exactly one of concurrent
    writers wins and readers never see a partial object (``os.replace`` would silently
    overwrite the winner). When ``durable`` the folder is fsynced too, so the new name
    survives a crash; otherwise the caller syncs later (:meth:`FsspecLake.sync`). A ``pool``
    gives the nameless file when it has one ready (:class:`_InodePool`).
    """
    folder = os.path.dirname(full)
    ready = pool.take() if pool is not None and not durable else None
    if ready is not None:
        # No look-up first: ``link`` answers whether the key exists, and a nameless file a
        # re-send wrote in vain goes back to the pool emptied (not freed: ext4 scans past
        # recently freed inodes on every later create).
        try:
            if _link_tmpfile(ready, full, data, durable=False, keep=True):
                return True
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # (a folder on another filesystem: made there)
                raise
        else:
            pool.give_back(ready)  # type: ignore[union-attr] # (ready came from it)
            return False
    if os.path.lexists(full):
        # Durable: spares the fsync. Unsynced: spares making (and freeing) a nameless file
        # for a re-send. Either way ``link`` alone decides who wins.
        return False
    if _TMPFILE_LINKS:
        try:
            fd = os.open(folder, os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE:
                raise
        else:
            return _link_tmpfile(fd, full, data, durable=durable)
    tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.link(tmp, full)  # FileExistsError: another writer won
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if durable:
        _fsync_path(folder)
    return True


_TMPFILE_LINKS = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
"""Linux: a nameless file (``O_TMPFILE``) linked to its key once written saves the temporary
name's create, unlink and look-ups: half the system calls of a small put."""
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}
"""What ``open(O_TMPFILE)`` answers on a filesystem without it (then the named temp is used)."""


class _InodePool:
    """Nameless files (``O_TMPFILE``) in a lake's root, opened ahead of need by a background
    thread, for unsynced creates to write and link at their key (any folder of the same
    filesystem).

    Making the inode is most of a small create's cost, and on a filesystem where many files
    were just deleted (a shared ``/tmp``) ext4 scans past each recently freed inode before it
    reuses one: 1-2 ms a create, measured. The group-commit round (which waits for every put
    of its requests before its one sync) then only writes and links.
    """

    def __init__(self, folder: str, size: int = 64) -> None:
        self._folder = folder
        self._size = size
        self._fds: deque[int] = deque()
        self._forked = False
        """True in a forked child (it must not use its parent's files): set at the fork,
        not asked per take (``getpid`` is a system call)."""
        _POOLS.add(self)
        self._wanted = threading.Event()
        self._closed = False
        # One thread for the pool's life, woken when it runs low: starting a thread per
        # refill made the committer wait for each start (the scheduler, under load).
        self._thread = threading.Thread(target=self._fill, name="lake-inodes", daemon=True)
        self._thread.start()
        self._wanted.set()

    def take(self) -> int | None:
        """A ready nameless file's descriptor (the caller closes it), or None when none is
        ready (or in a forked child, which must not share its parent's files)."""
        if self._closed or self._forked:
            return None
        try:
            fd: int | None = self._fds.popleft()
        except IndexError:
            fd = None
        if len(self._fds) < self._size // 2 and not self._wanted.is_set():
            self._wanted.set()  # (set() takes a lock and notifies: once per refill)
        return fd

    def give_back(self, fd: int) -> None:
        """Return an empty nameless file :meth:`take` gave (a create found its key taken)."""
        if self._closed or self._forked:
            os.close(fd)
            return
        self._fds.appendleft(fd)

    def close(self) -> None:
        """Close the ready files (nothing was written to them) and make no more."""
        self._closed = True
        self._wanted.set()
        self._drain()

    def _fill(self) -> None:
        while not self._closed:
            self._wanted.wait()
            self._wanted.clear()
            while len(self._fds) < self._size and not self._closed:
                try:
                    fd = os.open(self._folder, os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o666)
                except OSError as exc:  # no O_TMPFILE there, a full disk...: creates make their own
                    log.debug("cannot make nameless files in %s: %s", self._folder, exc)
                    self._closed = True
                    break
                self._fds.append(fd)
        self._drain()  # (close() drained too: this closes what was appended meanwhile)

    def _drain(self) -> None:
        while True:
            try:
                fd = self._fds.popleft()
            except IndexError:
                return
            with contextlib.suppress(OSError):
                os.close(fd)


_POOLS: weakref.WeakSet[_InodePool] = weakref.WeakSet()
"""Every live pool of this process: a forked child marks them all unusable."""


_LAKES: weakref.WeakSet[FsspecLake] = weakref.WeakSet()
"""Every live lake of this process: a forked child leaves their journals to the parent."""


def _forked_child() -> None:
    for pool in list(_POOLS):
        pool._forked = True
        pool._drain()  # this process's copies of its parent's files: never taken here
    for lake in list(_LAKES):
        lake._after_fork()


if hasattr(os, "register_at_fork"):  # (POSIX)
    os.register_at_fork(after_in_child=_forked_child)


def _link_tmpfile(fd: int, full: str, data: bytes, *, durable: bool, keep: bool = False) -> bool:
    """Write ``data`` to the nameless file ``fd``, then link it at ``full`` unless that
    exists (``link`` is the atomic create-if-absent); closes ``fd``, except, with ``keep``,
    when ``full`` existed: ``fd`` is then left open and empty again, for another create."""
    try:
        view, at = memoryview(data), 0
        while at < len(data):  # (at offsets: an emptied file given back is written again)
            at += os.pwrite(fd, view[at:], at)
        if durable:
            os.fsync(fd)
        _link_fd(fd, full)
    except FileExistsError:
        if not keep:
            os.close(fd)
            return False
        try:
            os.ftruncate(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        return False
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    if durable:
        _fsync_path(os.path.dirname(full))
    return True


def _load_linkat() -> Any:
    """libc's ``linkat`` (Linux), for ``AT_EMPTY_PATH``; None where it is missing."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        linkat = libc.linkat
    except (OSError, AttributeError):
        return None
    linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    linkat.restype = ctypes.c_int
    return linkat


_LINKAT = _load_linkat()
_AT_FDCWD, _AT_EMPTY_PATH = -100, 0x1000
_empty_path_links = _LINKAT is not None
"""Whether ``linkat(fd, "", AT_EMPTY_PATH)`` is allowed here (it needs CAP_DAC_READ_SEARCH):
it skips the /proc look-up of the other way, half a link's CPU. Cleared on first refusal."""


def _link_fd(fd: int, full: str) -> None:
    """Give the nameless file ``fd`` the name ``full`` (``FileExistsError`` if taken)."""
    global _empty_path_links
    if _empty_path_links:
        if _LINKAT(fd, b"", _AT_FDCWD, os.fsencode(full), _AT_EMPTY_PATH) == 0:
            return
        err = ctypes.get_errno()
        if err != errno.ENOENT:
            raise OSError(err, os.strerror(err), full)
        # ENOENT: no capability for AT_EMPTY_PATH, or the folder is gone; the /proc way
        # below tells which (and answers the latter itself).
        os.link(f"/proc/self/fd/{fd}", full, src_dir_fd=fd, follow_symlinks=True)
        _empty_path_links = False
        log.debug("linkat(AT_EMPTY_PATH) refused: nameless files are linked through /proc")
        return
    # linkat(AT_SYMLINK_FOLLOW) of the fd's /proc entry; an absolute path ignores the dir
    # fd, which is passed only because os.link calls plain link() without one.
    os.link(f"/proc/self/fd/{fd}", full, src_dir_fd=fd, follow_symlinks=True)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> object | None:
    """libc's ``syncfs`` (Linux): one call makes a whole filesystem's writes durable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return getattr(libc, "syncfs", None)


_SYNCFS = _load_syncfs()


class _SyncfsHandle:
    """A descriptor of a lake's root, opened with the lake and kept, for ``syncfs``.

    Linux reports a filesystem's write-back error to a descriptor only if it happened after
    that descriptor was opened, and to each descriptor once (errseq): a descriptor opened per
    ``syncfs`` misses an error of a write-back between two calls, and a checkpoint then
    deletes the journal of bytes that never reached the disk. A forked child opens its own:
    the inherited one shares its parent's open file, whose error cursor a ``syncfs`` of the
    child would advance — the parent would never see that error.
    """

    def __init__(self, folder: str) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
        self._pid = os.getpid()
        self._users = 0
        self._closed = False

    def syncfs(self) -> None:
        """``syncfs`` of the lake's filesystem; ``OSError`` with the error it reports."""
        with self._lock:
            if self._closed:
                raise OSError(errno.EBADF, f"the lake at {self._folder} is closed")
            if self._pid != os.getpid():
                # The parent's descriptor: never used here (see the class docstring); the
                # parent's writes are the parent's to make durable.
                inherited = self._fd
                self._fd = os.open(self._folder, os.O_RDONLY | os.O_CLOEXEC)
                self._pid = os.getpid()
                with contextlib.suppress(OSError):
                    os.close(inherited)
            fd = self._fd
            self._users += 1
        try:
            if _SYNCFS(fd) != 0:  # type: ignore[operator]
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            with self._lock:
                self._users -= 1
                if self._closed and not self._users:
                    self._release()

    def after_fork(self) -> None:
        """In a forked child: no ``syncfs`` of the parent's threads runs here, and the lock
        one of them held at the fork would never be released."""
        self._lock = threading.Lock()
        self._users = 0

    def close(self) -> None:
        """Close the descriptor (once no ``syncfs`` runs through it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not self._users:
                self._release()

    def _release(self) -> None:
        if self._pid == os.getpid():  # (a child that never synced holds its parent's number)
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1


def _makedirs_durably(folder: str) -> None:
    """Create ``folder`` and its missing parents, each new name synced in its parent."""
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # (another process made it meanwhile)
            os.mkdir(path)
        _fsync_path(os.path.dirname(path))


def open_lake(root: str) -> Lake:
    """The lake at ``root`` (folder, ``s3://…`` or ``gs://…``)."""
    log.debug("opening lake at %s", root)
    return FsspecLake(root)
