"""Write-ahead journal of a local lake's unsynced puts: one ``fdatasync`` per group commit.

A local lake's ``*_unsynced`` put writes its file (page cache, no fsync) and appends a record
(key and bytes) to the process's current journal *segment*, a file under ``{root}/.journal/``.
:meth:`Journal.sync` makes every record appended before it durable with one ``fdatasync`` of
that one file — not a ``syncfs`` of the whole filesystem, which on a shared disk also waits for
every other process's dirty pages, and not an fsync per object, which costs a journal commit of
the filesystem each. So a group-commit round of the gateway (:mod:`tenpo.lake.commit`) pays
one small sequential sync, and a 202 still means the bytes are on disk: in the journal, and in
their object once the page cache is written back.

Segments are *preallocated*: a background thread writes the next one full of zeros and syncs
it before it is needed, and records overwrite those zeros in place. The ``fdatasync`` of a
file whose size and blocks do not change writes the data and flushes the disk, without a
commit of the filesystem's own journal — which would have to wait for the metadata of every
file being created meanwhile (the round's objects among them). Replay stops at the first
record that is not intact, so the zeros after the last record read as its end.

*Checkpoints* keep the journal short: :meth:`Journal.sync` starts a new segment when the
current one is large or old, and a background thread then makes the objects of the old one
durable in place (``syncfs``, or an fsync of each file and folder where that is missing) and
deletes it. No request waits for a checkpoint. A checkpoint that fails (the filesystem reports
write-back errors) is not retried: Linux reports a write-back error once per descriptor
(errseq), so a later ``syncfs`` that succeeds proves nothing about the pages that failed, which
the kernel may have dropped. Every segment that held records when the error was reported is
*kept* instead — locked while this process lives, replayed by the next opener of the lake — and
while ``max_retired`` segments are kept or await a checkpoint, :meth:`Journal.sync` refuses
(``OSError``: nobody is answered for bytes whose only durable copy is a journal on a failing
disk), so segments — each an open, locked file — never pile up. Only the deletion of a segment
whose objects are durable is retried, with a growing pause.

The journal's folder is created (and its name synced in the lake root) by the first segment a
:class:`Journal` makes: a segment's name is durable only once every folder above it is.
:meth:`Journal.close` waits at most ``close_wait_s`` for the background threads; what they have
not finished stays on disk for recovery (logged), never deleted unsynced.

*Recovery* (:func:`recover`, run when a local lake is opened): a segment whose writer is gone
— its ``flock`` is free; a live writer holds its segments locked until they are checkpointed —
is replayed in order: each object it records that is missing, empty or cut short (what a power
loss leaves of an unsynced write) is written again, and so is a replaced object that still holds
the bytes its record replaced (a lost rename) — never one that holds other bytes, which a later
write left (the record names the replaced bytes by their hash). Then the replayed objects are
synced and the segment deleted. Replay is idempotent, so a recovery that is interrupted just
runs again. A record cut short at a segment's end (its sync never returned, so nobody was
answered for it) is ignored.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

JOURNAL_DIR = ".journal"
"""The journal's folder under the lake root (its keys are not objects: ``list`` skips it)."""

CREATE = 1
"""Record: ``key`` was created with these bytes (replayed if missing, empty or cut short)."""
PUT = 3
"""Record: ``key`` was replaced by these bytes; it also holds the SHA-256 of the bytes it
replaced (zeros: none). Replayed in order, like a create, and also over the replaced bytes."""
UNCHECKED_PUT = 2
"""A replace recorded without what it replaced (segments of earlier versions): replayed as an
unconditional replace."""
_NOTHING = bytes(32)
"""The replaced-bytes hash of a PUT whose key held nothing."""

_MAGIC = b"TNPJRNL1"
_HEAD = struct.Struct("<BIII")  # op, key length, data length, crc32 of op + key + data
_MAX_BYTES = 4 << 20
"""A segment past this size is checkpointed (at the next sync); also what a segment is
preallocated to."""
_MAX_AGE_S = 10.0
"""A segment older than this is checkpointed (at the next sync)."""
_MAX_RETIRED = 8
"""Synced segments awaiting their checkpoint past which :meth:`Journal.sync` refuses."""
_RETRY_S = 0.5
"""The first pause before a failed deletion of a checkpointed segment is tried again; it
doubles, up to 64 times."""
_CLOSE_WAIT_S = 5.0
"""How long :meth:`Journal.close` waits for a background thread (a checkpoint, a spare being
preallocated) that a failing disk holds up."""

_datasync = getattr(os, "fdatasync", os.fsync)
_NEW = ".new"
"""A segment being created (not locked yet, or being preallocated): recovery ignores it."""
_STALE_NEW_S = 300.0
"""A ``.new`` segment older than this and unlocked was left by a crash at its creation."""


@dataclass(eq=False)
class _Segment:
    path: str
    fd: int
    opened: float = field(default_factory=time.monotonic)
    size: int = 0
    """Bytes of records (and the header) written: where the next record goes."""
    touched: set[str] = field(default_factory=set)
    """Files and folders its records created or changed: what its checkpoint makes durable."""
    durable: bool = False
    """Its checkpoint made its objects durable (only its deletion is left to retry)."""
    kept: bool = False
    """Held records when a write-back error was reported: never checkpointed by this process,
    left for recovery."""


def _record(op: int, key: str, data: bytes, replaced: bytes | None = None) -> bytes:
    """One record's bytes; a PUT's data starts with ``replaced`` (a SHA-256 digest, or None
    for nothing)."""
    if op == PUT:
        data = (replaced or _NOTHING) + data
    raw_key = key.encode()
    crc = zlib.crc32(data, zlib.crc32(raw_key, zlib.crc32(bytes([op]))))
    return _HEAD.pack(op, len(raw_key), len(data), crc) + raw_key + data


class Journal:
    """The journal of one process's unsynced puts into one local lake (thread-safe).

    ``make_durable(paths)`` makes files and folders durable in place (the lake's ``syncfs``
    or fsyncs); a checkpoint calls it for the paths of a segment before deleting it.
    """

    def __init__(
        self,
        folder: str,
        make_durable: Callable[[set[str]], None],
        *,
        max_bytes: int = _MAX_BYTES,
        max_age_s: float = _MAX_AGE_S,
        max_retired: int = _MAX_RETIRED,
        retry_s: float = _RETRY_S,
        close_wait_s: float = _CLOSE_WAIT_S,
    ) -> None:
        self.folder = folder
        self._make_durable = make_durable
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._max_retired = max_retired
        self._retry_s = retry_s
        self._close_wait_s = close_wait_s
        self._folder_synced = False
        """The folder's name was synced in its parent by this journal (its first segment)."""
        self._lock = threading.Lock()  # appends, and the swap of the current segment
        self._sync_lock = threading.Lock()  # one sync at a time (see sync)
        self._current: _Segment | None = None
        self._pending: list[bytes] = []
        """Records appended since the last successful sync (re-appended after a failed one)."""
        self._unwritten: list[bytes] = []
        """Records of a failed sync not yet rewritten into a fresh segment (its creation failed
        too): the next sync writes them first, and fails while it cannot."""
        self._unwritten_touched: set[str] = set()
        self._retired: list[_Segment] = []  # synced, awaiting their checkpoint
        self._kept: list[_Segment] = []  # their checkpoint failed: left for recovery
        self._spare: _Segment | None = None  # preallocated, for when the current one retires
        self._preparing = False
        self._closed = False
        self._cond = threading.Condition(self._lock)
        self._checkpointer: threading.Thread | None = None
        self.checkpoints = 0
        """Segments checkpointed and deleted so far (for tests)."""

    def append(
        self,
        op: int,
        key: str,
        data: bytes,
        touched: Iterable[str],
        replaced: bytes | None = None,
    ) -> None:
        """Record that ``key`` now holds ``data`` (its file is written, maybe not durable);
        ``touched`` are the files and folders the write changed; ``replaced`` (a PUT's) is
        the SHA-256 of the bytes it replaced, None if none. Durable after :meth:`sync`."""
        record = _record(op, key, data, replaced)
        with self._lock:
            segment = self._segment()
            self._write(segment, record)
            segment.touched.update(touched)
            self._pending.append(record)

    def sync(self) -> None:
        """Make every record appended before this call durable (``OSError`` if it fails).

        Syncs are serialised: a sync that returns has covered every append that returned
        before it began, whether the segment was swapped meanwhile or not. Refused while
        ``max_retired`` segments await a checkpoint that keeps failing (their records stay
        pending: a later sync covers them).
        """
        with self._sync_lock:
            with self._lock:
                if len(self._retired) + len(self._kept) >= self._max_retired:
                    raise OSError(
                        errno.EIO,
                        f"{len(self._kept)} journal segments under {self.folder} are kept for "
                        f"recovery and {len(self._retired)} await a checkpoint (the disk "
                        "reports write-back errors; a restart replays the kept ones)",
                    )
                self._rewrite_unwritten()  # OSError: still unwritten, and this sync fails
                segment = self._current
                if segment is None or not self._pending:
                    return
                pending, self._pending = self._pending, []
                rotate = (
                    segment.size >= self._max_bytes
                    or time.monotonic() - segment.opened >= self._max_age_s
                )
                if rotate:
                    self._current = None  # the next append opens a new segment
            try:
                _datasync(segment.fd)
            except OSError:
                # After a failed fdatasync the kernel may have dropped those pages: write the
                # records again into a new segment, which the next sync covers.
                with self._lock:
                    if self._current is segment:
                        self._current = None
                        # Appended to the failed segment while it was being synced: they
                        # must move to the fresh one as well (the next sync covers only it).
                        pending += self._pending
                        self._pending = []
                    self._retire(segment)
                    self._unwritten += pending
                    self._unwritten_touched |= segment.touched
                    with contextlib.suppress(OSError):  # else the next sync retries, or fails
                        self._rewrite_unwritten()
                raise
            if rotate:
                with self._lock:
                    self._retire(segment)

    def close(self) -> None:
        """Sync, checkpoint every segment and delete it (an object's durability then no
        longer depends on the journal); ``OSError`` if the sync fails.

        Waits at most ``close_wait_s`` for the background threads (a failing disk can hold a
        ``syncfs`` for minutes): segments not checkpointed by then — and those a checkpoint
        failed for — stay on disk, for the recovery of the next opener (logged, not raised:
        their records are durable in them, and nothing else can be done for them here).
        """
        try:
            self.sync()
        finally:
            self._shut_down()

    def _shut_down(self) -> None:
        deadline = time.monotonic() + self._close_wait_s
        with self._lock:
            self._closed = True
            while self._preparing and self._cond.wait(timeout=_left(deadline)):
                pass
            spare, self._spare = self._spare, None  # (a late one drops itself: _closed)
            if self._current is not None:
                self._retire(self._current)
                self._current = None
            self._cond.notify_all()
            while self._retired and self._checkpointer is not None:
                if not self._cond.wait(timeout=_left(deadline)):
                    break
            running = self._checkpointer is not None
            left = [] if running else list(self._retired)
        for segment in left:  # no checkpointer running (it gave up on a deletion): do it here
            self._checkpoint(segment)
        if spare is not None:
            _drop(spare)
        with self._lock:
            stuck = list(self._retired) if running else []
            kept, self._kept = self._kept, []
            unchecked = [s for s in self._retired if not running]
        if stuck:
            log.error(
                "journal %s: the checkpoint of %d segments did not finish within %.1f s (a "
                "failing disk?); they stay on disk, and the next opener of the lake replays "
                "them: %s",
                self.folder,
                len(stuck),
                self._close_wait_s,
                ", ".join(s.path for s in stuck),
            )
        for segment in kept + unchecked:
            log.error(
                "journal segment %s kept for recovery: the next opener of the lake replays it",
                segment.path,
            )
            os.close(segment.fd)  # its lock: this process is done with it

    def forget(self) -> None:
        """In a forked child: close this process's copies of the segments' descriptors,
        nothing else (the parent keeps writing, syncing and deleting them; a copy left open
        would also keep their ``flock`` held after the parent is gone, and recovery waiting).
        Not for use afterwards."""
        self._closed = True
        segments = [self._current, self._spare, *self._retired, *self._kept]
        for segment in segments:
            if segment is not None:
                with contextlib.suppress(OSError):
                    os.close(segment.fd)

    # -- internals ---------------------------------------------------------------------
    def _rewrite_unwritten(self) -> None:
        """Write the records of a failed sync into the current segment (a fresh one), for the
        next sync to cover (under _lock). ``OSError`` leaves them for the next try."""
        if not self._unwritten:
            return
        fresh = self._segment()
        for record in self._unwritten:
            self._write(fresh, record)  # a retry after a failure here writes some twice:
        fresh.touched |= self._unwritten_touched  # replay is idempotent
        self._pending = self._unwritten + self._pending
        self._unwritten, self._unwritten_touched = [], set()

    def _segment(self) -> _Segment:
        """The current segment (under _lock): the preallocated spare if one is ready, else
        a new one that grows as it is written (the first, or when the spare is late)."""
        if self._current is None:
            spare, self._spare = self._spare, None
            if spare is None:
                spare = _new_segment(self.folder, 0)
            if not self._folder_synced:
                # The folder's name in the lake root, whoever made it (another process, or
                # the lake's lock): until it is durable, so is no segment in it.
                try:
                    _fsync_folder(os.path.dirname(self.folder))
                except BaseException:
                    self._spare = spare  # (empty: the next try takes it)
                    raise
                self._folder_synced = True
            spare.opened = time.monotonic()
            self._current = spare
            self._prepare_spare()
        return self._current

    def _prepare_spare(self) -> None:
        """Start writing the next preallocated segment in the background (under _lock)."""
        if self._spare is not None or self._preparing:
            return
        self._preparing = True
        threading.Thread(target=self._make_spare, name="lake-journal-spare", daemon=True).start()

    def _make_spare(self) -> None:
        try:
            spare: _Segment | None = _new_segment(self.folder, self._max_bytes)
        except OSError as exc:
            log.warning("cannot preallocate a journal segment: %s", exc)
            spare = None
        with self._lock:
            if spare is not None and self._spare is None and not self._closed:
                self._spare, spare = spare, None
        if spare is not None:  # not needed any more: gone before close() can return
            _drop(spare)
        with self._lock:
            self._preparing = False
            self._cond.notify_all()

    @staticmethod
    def _write(segment: _Segment, record: bytes) -> None:
        start = segment.size
        view = memoryview(record)
        try:
            while view:
                written = os.pwrite(segment.fd, view, segment.size)
                segment.size += written
                view = view[written:]
        except OSError:
            # Cut short (ENOSPC, EIO): the next record goes where this one began, over its
            # torn bytes. Left in the middle, they would stop replay before every later record.
            segment.size = start
            raise

    def _retire(self, segment: _Segment) -> None:
        """Hand a synced segment to the checkpointer (under _lock); a kept one stays."""
        if segment.kept:
            self._kept.append(segment)
            return
        self._retired.append(segment)
        if self._checkpointer is None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="lake-journal", daemon=True
            )
            self._checkpointer.start()
        self._cond.notify_all()

    def _checkpoint_loop(self) -> None:
        pause = self._retry_s
        while True:
            with self._lock:
                if not self._retired:
                    self._checkpointer = None
                    self._cond.notify_all()
                    return
                segment = self._retired[0]
            done = self._checkpoint(segment)
            with self._lock:
                if done:
                    pause = self._retry_s
                    self._cond.notify_all()
                    continue
                # Its deletion failed: tried again after a pause that grows (no spinning),
                # until close(), which makes the last attempt itself (then the segment waits
                # for recovery).
                if not self._closed:
                    self._cond.wait(timeout=pause)
                    pause = min(pause * 2, self._retry_s * 64)
                if self._closed:
                    self._checkpointer = None
                    self._cond.notify_all()
                    return

    def _checkpoint(self, segment: _Segment) -> bool:
        """Make a retired segment's objects durable in place, then delete it; False when only
        the deletion failed (worth a retry). A failed ``make_durable`` keeps the segment, and
        every other one holding records, for recovery (see the module docstring)."""
        if segment.kept:  # (kept by a failure meanwhile: never trust a later success)
            return True
        if not segment.durable:
            try:
                self._make_durable(segment.touched)
            except OSError as exc:
                with self._lock:
                    suspects = [*self._retired, *([self._current] if self._current else [])]
                    for held in suspects:
                        held.kept = True
                    self._retired = []
                    self._kept += [s for s in suspects if s is not self._current]
                    self._cond.notify_all()
                log.error(
                    "journal checkpoint of %s failed (%s): the disk reports write-back errors, "
                    "so %d segments under %s are kept for recovery (replayed by the next opener "
                    "of the lake: restart this process)",
                    segment.path,
                    exc,
                    len(suspects),
                    self.folder,
                )
                return True  # nothing left to retry for it
            segment.durable = True
        try:
            os.unlink(segment.path)
        except OSError as exc:
            log.error("cannot delete the checkpointed journal segment %s: %s", segment.path, exc)
            return False
        with self._lock:
            self._retired.remove(segment)
            self.checkpoints += 1
        os.close(segment.fd)  # releases its lock
        return True


def _new_segment(folder: str, prealloc: int) -> _Segment:
    """A new segment file, locked for this process's life of it, its name durable; with
    ``prealloc`` > 0 written full of zeros up to that size and synced."""
    if not os.path.isdir(folder):
        os.makedirs(folder, exist_ok=True)
        _fsync_folder(os.path.dirname(folder))  # its name (the journal syncs it once anyway)
    name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path = os.path.join(folder, name + ".log")
    # Created under a name recovery ignores, locked, then renamed: under its ``.log`` name it
    # is locked from the start (between an open and its flock, another opener's recovery
    # would take the free lock, find no record and delete it; every record written to it
    # after that would be synced and acknowledged in a file with no name).
    new = os.path.join(folder, name + _NEW)
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a live writer's segment is never replayed
        os.write(fd, _MAGIC)
        zeros = bytes(1 << 20)
        for at in range(len(_MAGIC), prealloc, len(zeros)):
            os.pwrite(fd, zeros[: prealloc - at], at)
        if prealloc:
            os.fsync(fd)  # its blocks and size: later fdatasyncs change neither
        os.rename(new, path)
        _fsync_folder(folder)  # its name survives a crash
    except BaseException:
        os.close(fd)
        for left in (new, path):
            with contextlib.suppress(OSError):
                os.unlink(left)
        raise
    return _Segment(path, fd, size=len(_MAGIC))


def _drop(segment: _Segment) -> None:
    """Delete a segment that holds no record (a spare)."""
    with contextlib.suppress(OSError):
        os.unlink(segment.path)
    os.close(segment.fd)


def _left(deadline: float) -> float:
    """Seconds to ``deadline`` (monotonic), at least 0."""
    return max(0.0, deadline - time.monotonic())


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(data: bytes) -> list[tuple[int, str, bytes]]:
    """The complete, intact records of a segment's bytes, in order (a torn tail is dropped):
    (op, key, the bytes the key was given)."""
    return [(op, key, body) for op, key, body, _ in read_entries(data)]


def read_entries(data: bytes) -> list[tuple[int, str, bytes, bytes | None]]:
    """:func:`read_records` with each PUT's replaced-bytes hash (None: it replaced nothing,
    and for every other record)."""
    if not data.startswith(_MAGIC):
        return []
    records: list[tuple[int, str, bytes, bytes | None]] = []
    at = len(_MAGIC)
    while at + _HEAD.size <= len(data):
        op, key_len, data_len, crc = _HEAD.unpack_from(data, at)
        start = at + _HEAD.size
        end = start + key_len + data_len
        if op not in (CREATE, PUT, UNCHECKED_PUT) or end > len(data):
            break
        raw_key, body = data[start : start + key_len], data[start + key_len : end]
        if zlib.crc32(body, zlib.crc32(raw_key, zlib.crc32(bytes([op])))) != crc:
            break
        replaced = None
        if op == PUT:
            if len(body) < len(_NOTHING):
                break
            digest, body = body[: len(_NOTHING)], body[len(_NOTHING) :]
            replaced = None if digest == _NOTHING else digest
        records.append((op, raw_key.decode(), body, replaced))
        at = end
    return records


def recover(
    folder: str,
    replay: Callable[[int, str, bytes, bytes | None], list[str]],
    make_durable: Callable[[set[str]], None],
) -> int:
    """Replay and delete the segments under ``folder`` whose writer is gone; how many held
    records.

    ``replay(op, key, data, replaced)`` (see :func:`read_entries`) restores one record's
    object if needed and returns the paths it wrote; ``make_durable`` syncs them before the
    segment is deleted.
    """
    try:
        listed = os.listdir(folder)
    except FileNotFoundError:
        return 0
    for name in listed:
        if name.endswith(_NEW):
            _drop_stale_new(os.path.join(folder, name))
    names = sorted(n for n in listed if n.endswith(".log"))
    replayed = 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # another process recovered it meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            if os.fstat(fd).st_nlink == 0:
                continue  # recovered by another process between listdir and flock
            with open(fd, "rb", closefd=False) as fh:
                records = read_entries(fh.read())
            touched: set[str] = set()
            for op, key, data, replaced in records:
                touched.update(replay(op, key, data, replaced))
            if touched:
                make_durable(touched)
            os.unlink(path)
            if records:  # (not a spare that never held one)
                replayed += 1
                log.warning("recovered %d journaled writes from %s", len(records), path)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
    return replayed


def _drop_stale_new(path: str) -> None:
    """Delete a segment its writer died creating (it holds no record: records go to
    ``.log`` segments only)."""
    try:
        if time.time() - os.stat(path).st_mtime < _STALE_NEW_S:
            return
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
    except (BlockingIOError, FileNotFoundError):
        pass
    finally:
        os.close(fd)
