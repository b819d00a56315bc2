"""The local lake's write-ahead journal: a synced unsynced write survives the loss of its file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tenpo.bus.memory import MemoryBus
from tenpo.core.errors import LakeError
from tenpo.lake import FsspecLake, LandingZone, open_lake
from tenpo.lake import base as base_mod
from tenpo.lake import journal as journal_mod
from tenpo.lake.journal import CREATE, PUT, read_records
from tenpo.lake.keys import claim_key

_WRITER = """
import os, signal, sys
from tenpo.lake import FsspecLake
lake = FsspecLake(sys.argv[1])
assert lake.put_if_absent_unsynced("landing/x/a.json", b"A" * 100)
assert lake.put_if_absent_unsynced("landing/x/b.json", b"B" * 100)
lake.put_unsynced("ids/x/c.json", b"C1")
lake.put_unsynced("ids/x/c.json", b"C2")
lake.sync()
print("synced", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no checkpoint: the journal is all that is durable
"""


def _segments(root: Path) -> list[Path]:
    return sorted((root / ".journal").glob("*.log"))


def _killed_writer(root: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WRITER, str(root)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "synced"


def test_opening_the_lake_replays_a_dead_writers_journal(tmp_path: Path) -> None:
    _killed_writer(tmp_path)
    assert _segments(tmp_path)  # the one with the records (and maybe a preallocated spare)
    # What a power loss can leave of writes that were never synced in place:
    (tmp_path / "landing/x/a.json").write_bytes(b"")  # an empty file
    (tmp_path / "landing/x/b.json").unlink()  # or no file at all
    (tmp_path / "ids/x/c.json").write_bytes(b"C1")  # or an older version
    lake = open_lake(str(tmp_path))
    assert lake.recovered == 1  # type: ignore[attr-defined]
    assert lake.get("landing/x/a.json") == b"A" * 100
    assert lake.get("landing/x/b.json") == b"B" * 100
    assert lake.get("ids/x/c.json") == b"C2"  # PUT records replay in order
    assert _segments(tmp_path) == []  # replayed, synced in place, deleted
    assert open_lake(str(tmp_path)).recovered == 0  # type: ignore[attr-defined]


def test_replay_leaves_other_bytes_alone_and_ignores_a_torn_tail(tmp_path: Path) -> None:
    _killed_writer(tmp_path)
    (segment,) = [s for s in _segments(tmp_path) if read_records(s.read_bytes())]
    with segment.open("ab") as fh:
        fh.write(b"\x01\x05\x00\x00")  # a record cut short: its sync never returned
    (tmp_path / "landing/x/a.json").write_bytes(b"other")  # not what a crash leaves of A*100
    (tmp_path / "landing/x/b.json").unlink()
    lake = open_lake(str(tmp_path))
    assert lake.get("landing/x/a.json") == b"other"
    assert lake.get("landing/x/b.json") == b"B" * 100
    assert _segments(tmp_path) == []


def test_a_live_writers_segment_is_not_replayed(tmp_path: Path) -> None:
    lake = FsspecLake(str(tmp_path))
    assert lake.put_if_absent_unsynced("landing/x/a.json", b"A")
    lake.sync()
    other = FsspecLake(str(tmp_path))  # another opener while the writer is alive (flock)
    assert other.recovered == 0
    assert any(read_records(s.read_bytes()) for s in _segments(tmp_path))
    lake.checkpoint()
    assert _segments(tmp_path) == []


def test_old_segments_are_checkpointed_in_the_background(tmp_path: Path) -> None:
    lake = FsspecLake(str(tmp_path))
    lake.put_unsynced("a/one.json", b"1")
    lake.sync()
    journal = lake._journal
    assert journal is not None
    journal._max_age_s = 0.0  # the next sync retires the segment
    lake.put_unsynced("a/two.json", b"2")
    lake.sync()
    lake.put_unsynced("a/three.json", b"3")  # goes to a new segment
    lake.sync()
    for _ in range(200):
        if journal.checkpoints >= 2:
            break
        import time

        time.sleep(0.05)
    assert journal.checkpoints >= 2
    assert len(_segments(tmp_path)) <= 2  # the current one and a spare
    lake.checkpoint()
    assert _segments(tmp_path) == []


def test_a_failed_sync_rewrites_its_records_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = FsspecLake(str(tmp_path))
    lake.put_unsynced("a/one.json", b"1")

    def eio(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_mod, "_datasync", eio)
    with pytest.raises(LakeError, match="durable"):
        lake.sync()
    monkeypatch.undo()
    lake.sync()
    # The record lives on in a fresh segment (the failed one may have lost its pages).
    fresh = _segments(tmp_path)[-1]
    assert (PUT, "a/one.json", b"1") in read_records(fresh.read_bytes())
    lake.checkpoint()
    assert _segments(tmp_path) == []


def test_a_resend_answered_from_place_is_journaled_again(tmp_path: Path) -> None:
    """A re-send's 202 relies on the first sender's files, which may not be durable yet."""
    first = LandingZone(FsspecLake(str(tmp_path)), MemoryBus(), group_commit=True)
    landed = first.land("iot", "t1", b'{"events": []}', "json", idempotency_key="k1")
    lake = FsspecLake(str(tmp_path))  # another gateway process
    zone = LandingZone(lake, MemoryBus(), group_commit=True)
    again = zone.land("iot", "t1", b'{"events": []}', "json", idempotency_key="k1")
    assert not again.created and again.event.key == landed.event.key
    # This lake's own journal (the first one's, in the same process, holds both keys anyway).
    keys = {key for op, key, _ in _records_of(lake) if op == CREATE}
    assert {landed.event.key, claim_key("iot", "t1", landed.event.object_id)} <= keys
    zone.close()
    first.close()
    assert _segments(tmp_path) == []


def _records_of(lake: FsspecLake) -> list[tuple[int, str, bytes]]:
    """The records in this lake instance's own journal segments (current and retired)."""
    journal = lake._journal
    assert journal is not None
    segments = [*journal._retired, *([journal._current] if journal._current else [])]
    return [
        r
        for s in segments
        if os.path.exists(s.path)
        for r in read_records(open(s.path, "rb").read())
    ]


def test_a_segment_being_created_is_never_recovered_by_another_opener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between a new segment's open and its flock, another opener's recovery must not see it
    (it would take the free lock, find no records and delete the file: every record appended
    afterwards would go to a nameless file, synced and acknowledged, gone at a power loss)."""
    real_flock = journal_mod.fcntl.flock
    opened: list[FsspecLake] = []

    class _Fcntl:
        LOCK_EX, LOCK_NB = journal_mod.fcntl.LOCK_EX, journal_mod.fcntl.LOCK_NB

        @staticmethod
        def flock(fd: int, op: int) -> None:
            if op == journal_mod.fcntl.LOCK_EX and not opened:
                opened.append(FsspecLake(str(tmp_path)))  # another process opens the lake now
            real_flock(fd, op)

    monkeypatch.setattr(journal_mod, "fcntl", _Fcntl)
    lake = FsspecLake(str(tmp_path))
    lake.put_unsynced("a/one.json", b"1")
    lake.sync()
    monkeypatch.undo()
    assert opened and opened[0].recovered == 0
    records = [r for s in _segments(tmp_path) for r in read_records(s.read_bytes())]
    assert (PUT, "a/one.json", b"1") in records
    lake.checkpoint()


def test_a_failed_append_does_not_hide_the_records_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write cut short (ENOSPC) must not leave a torn record in the middle of a segment:
    replay stops at it, so every later, acknowledged record would be lost."""
    lake = FsspecLake(str(tmp_path))
    lake.put_unsynced("a/one.json", b"1" * 50)
    lake.sync()
    journal = lake._journal
    assert journal is not None and journal._current is not None
    fd = journal._current.fd
    real_pwrite = os.pwrite
    calls: list[int] = []

    def short_then_full(f: int, data: object, at: int) -> int:
        if f != fd:
            return real_pwrite(f, data, at)  # type: ignore[arg-type]
        calls.append(1)
        if len(calls) == 1:
            return real_pwrite(f, bytes(data)[:10], at)  # type: ignore[arg-type]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_mod.os, "pwrite", short_then_full)
    with pytest.raises(LakeError):
        lake.put_unsynced("a/two.json", b"2" * 50)
    monkeypatch.undo()
    lake.put_unsynced("a/three.json", b"3" * 50)  # the disk has room again: acknowledged
    lake.sync()
    keys = [key for _, key, _ in _records_of(lake)]
    assert "a/one.json" in keys and "a/three.json" in keys


def test_a_failed_sync_keeps_the_records_appended_during_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record appended (by another thread) while a sync that then fails was running must be
    in the segment the next sync covers."""
    lake = FsspecLake(str(tmp_path))
    lake.put_unsynced("a/one.json", b"1")
    real = journal_mod._datasync

    def append_then_eio(fd: int) -> None:
        lake.put_unsynced("a/two.json", b"2")  # a concurrent put of the next round
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_mod, "_datasync", append_then_eio)
    with pytest.raises(LakeError, match="durable"):
        lake.sync()
    monkeypatch.setattr(journal_mod, "_datasync", real)
    lake.sync()  # the next round: "a/two.json" is acknowledged after it
    journal = lake._journal
    assert journal is not None and journal._current is not None
    current = read_records(Path(journal._current.path).read_bytes())
    assert (PUT, "a/one.json", b"1") in current
    assert (PUT, "a/two.json", b"2") in current
    lake.checkpoint()


def test_a_resend_that_completes_a_claim_journals_the_claim(tmp_path: Path) -> None:
    """The claim was written (unsynced) by another gateway that died before its object: the
    re-send's 202 relies on that claim, so its own sync must cover it (a lost claim makes a
    later re-send land the bytes again under a new key)."""
    first = LandingZone(FsspecLake(str(tmp_path)), MemoryBus(), group_commit=True)
    landed = first.land("iot", "t1", b'{"events": []}', "json", idempotency_key="k1")
    first.close()
    ckey = claim_key("iot", "t1", landed.event.object_id)
    (tmp_path / landed.event.key).unlink()  # the first writer died between claim and object
    lake = FsspecLake(str(tmp_path))
    zone = LandingZone(lake, MemoryBus(), group_commit=True)
    again = zone.land("iot", "t1", b'{"events": []}', "json", idempotency_key="k1")
    assert again.event.key == landed.event.key
    keys = {key for op, key, _ in _records_of(lake)}
    assert {landed.event.key, ckey} <= keys
    zone.close()


def test_records_overwrite_a_preallocated_spare(tmp_path: Path) -> None:
    """After the first segment the journal writes into segments preallocated with zeros (no
    size change for fdatasync to commit); replay reads their records up to the zeros."""
    import time

    lake = FsspecLake(str(tmp_path))
    lake.put_unsynced("a/one.json", b"1")
    lake.sync()
    journal = lake._journal
    assert journal is not None
    for _ in range(1200):  # a 4 MiB preallocation on a loaded shared disk: up to a minute
        if journal._spare is not None:
            break
        time.sleep(0.05)
    spare = journal._spare
    assert spare is not None and os.path.getsize(spare.path) == journal._max_bytes
    journal._max_age_s = 0.0
    lake.put_unsynced("a/two.json", b"2")
    lake.sync()  # retires the first segment
    lake.put_unsynced("a/three.json", b"3")  # into the spare
    lake.sync()
    assert os.path.getsize(spare.path) == journal._max_bytes  # overwritten in place
    assert read_records(Path(spare.path).read_bytes()) == [(PUT, "a/three.json", b"3")]
    lake.checkpoint()
    assert _segments(tmp_path) == []


def test_a_journal_that_cannot_be_written_is_a_lake_error(tmp_path: Path) -> None:
    """No journal, no 202: a full or read-only journal folder is a clear LakeError (the
    gateway's 503), for a re-send's keep_unsynced as for a put."""
    lake = FsspecLake(str(tmp_path))
    lake.put("landing/x/a.json", b"A")
    (tmp_path / ".journal").write_bytes(b"")  # the journal's folder cannot be created
    with pytest.raises(LakeError, match="landing/x/a.json"):
        lake.keep_unsynced("landing/x/a.json", b"A")
    with pytest.raises(LakeError):
        lake.put_unsynced("landing/x/b.json", b"B")


def test_a_replay_that_fails_is_a_lake_error_and_keeps_the_segment(tmp_path: Path) -> None:
    _killed_writer(tmp_path)
    (tmp_path / "landing/x/b.json").unlink()
    (tmp_path / "landing/x/b.json").mkdir()  # the object cannot be written again
    with pytest.raises(LakeError, match="journal"):
        FsspecLake(str(tmp_path))
    assert any(read_records(s.read_bytes()) for s in _segments(tmp_path))  # kept for later
    (tmp_path / "landing/x/b.json").rmdir()
    assert FsspecLake(str(tmp_path)).get("landing/x/b.json") == b"B" * 100


def _die(lake: FsspecLake) -> None:
    """Let ``lake``'s journal go as a killed writer's would: its segments unlocked, nothing
    checkpointed (the process lives on, but its lake is no writer any more)."""
    journal = lake._journal
    assert journal is not None
    lake._journal = None
    with journal._lock:
        for segment in [*journal._retired, journal._current, journal._spare]:
            if segment is not None:
                os.close(segment.fd)  # releases its flock
        journal._retired, journal._current, journal._spare = [], None, None
        journal._closed = True


def test_replaying_a_put_leaves_a_newer_rewrite_of_its_key_alone(tmp_path: Path) -> None:
    """A dead writer journaled a PUT of a key that was rewritten since (here by a durable put
    of another writer): replay must not restore the older bytes over the newer ones."""
    old = FsspecLake(str(tmp_path))
    old.put("ids/x/c.json", b"C0")
    old.put_unsynced("ids/x/c.json", b"C1")
    old.sync()
    _die(old)
    old.put("ids/x/c.json", b"C2-newer")  # a later writer's durable rewrite
    lake = open_lake(str(tmp_path))
    assert lake.recovered == 1  # type: ignore[attr-defined]
    assert lake.get("ids/x/c.json") == b"C2-newer"


def test_replaying_a_put_restores_it_over_the_bytes_it_replaced(tmp_path: Path) -> None:
    """What a crash leaves of an unsynced replace: the old bytes (the rename was lost), an
    empty or a missing file. Each is replaced again by the journaled bytes."""
    for left in (b"C0", b"", None):
        root = tmp_path / repr(left)
        lake = FsspecLake(str(root))
        lake.put("ids/x/c.json", b"C0")
        lake.put_unsynced("ids/x/c.json", b"C1-new")
        lake.sync()
        _die(lake)
        if left is None:
            (root / "ids/x/c.json").unlink()
        else:
            (root / "ids/x/c.json").write_bytes(left)
        assert open_lake(str(root)).get("ids/x/c.json") == b"C1-new", left


def test_a_replace_recorded_by_an_earlier_version_is_replayed_unconditionally(
    tmp_path: Path,
) -> None:
    (tmp_path / ".journal").mkdir()
    segment = journal_mod._MAGIC + journal_mod._record(journal_mod.UNCHECKED_PUT, "a/b", b"new")
    (tmp_path / ".journal" / "00000000000000000001-1-x.log").write_bytes(segment)
    (tmp_path / "a").mkdir()
    (tmp_path / "a/b").write_bytes(b"old")
    assert open_lake(str(tmp_path)).get("a/b") == b"new"


def test_a_failed_sync_whose_fresh_segment_cannot_be_made_keeps_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync fails, and so does creating the segment its records are rewritten to: the
    records (one appended during the failed sync, for the next round) must still be written
    and synced by the next sync, not dropped while that sync returns as if it covered them."""
    lake = FsspecLake(str(tmp_path))
    lake.put_unsynced("a/one.json", b"1")
    real_sync, real_new = journal_mod._datasync, journal_mod._new_segment

    def append_then_eio(fd: int) -> None:
        lake.put_unsynced("a/two.json", b"2")  # a concurrent put of the next round
        raise OSError(5, "Input/output error")

    def no_segment(folder: str, prealloc: int) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_mod, "_datasync", append_then_eio)
    monkeypatch.setattr(journal_mod, "_new_segment", no_segment)
    journal = lake._journal
    assert journal is not None
    journal._spare = None  # (a preallocated spare would serve as the fresh segment)
    journal._preparing = True  # and none is made meanwhile
    with pytest.raises(LakeError):
        lake.sync()
    monkeypatch.setattr(journal_mod, "_datasync", real_sync)
    monkeypatch.setattr(journal_mod, "_new_segment", real_new)
    journal._preparing = False
    lake.sync()  # the next round: "a/two.json" is acknowledged after it
    assert journal._current is not None
    current = read_records(Path(journal._current.path).read_bytes())
    assert (PUT, "a/one.json", b"1") in current
    assert (PUT, "a/two.json", b"2") in current
    lake.checkpoint()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_checkpoints_failing_on_a_broken_disk_bound_the_open_segments(tmp_path: Path) -> None:
    """While every checkpoint fails (syncfs reports write-back errors), retired segments must
    not pile up, each holding its file descriptor (and its lock) for good: past a bound the
    journal refuses to sync — no 202 for what a failing disk holds. A segment a checkpoint
    failed for is kept for recovery even once the disk heals (a later syncfs that succeeds
    says nothing of the pages that failed: Linux reports an error once), and the next opener
    replays every acknowledged record."""
    broken = True

    def make_durable(paths: set[str]) -> None:
        if broken:
            raise OSError(5, "Input/output error")

    folder = str(tmp_path / ".journal")
    journal = journal_mod.Journal(folder, make_durable, max_age_s=0.0, max_retired=3, retry_s=0.01)
    before = _open_fds()
    acked: list[str] = []
    refused: list[str] = []
    for i in range(12):  # each sync retires its segment (max_age_s=0)
        journal.append(CREATE, f"a/{i}.json", b"x", [])
        try:
            journal.sync()
        except OSError:
            refused.append(f"a/{i}.json")
        else:
            acked.append(f"a/{i}.json")
        for _ in range(500):  # (its checkpoint, failing, in the background)
            if journal._checkpointer is None:
                break
            threading.Event().wait(0.01)
    assert acked and refused  # the journal stopped acknowledging...
    while journal._preparing:  # (a spare being written holds a descriptor for a moment)
        threading.Event().wait(0.01)
    assert _open_fds() - before <= 3 + 2  # ...holding its kept, current and spare segments
    assert len(_segments(tmp_path)) <= 3 + 2
    broken = False
    threading.Event().wait(0.2)
    assert journal.checkpoints == 0 and len(journal._kept) == 3  # never retried
    journal.append(CREATE, "a/last.json", b"x", [])
    with pytest.raises(OSError, match="kept for recovery"):
        journal.sync()  # still refused: only a replay makes the kept ones durable
    with pytest.raises(OSError):
        journal.close()
    assert _open_fds() <= before  # their locks released: the next opener replays them
    replayed: list[str] = []

    def replay(op: int, key: str, data: bytes, replaced: bytes | None) -> list[str]:
        replayed.append(key)
        return [key]

    assert journal_mod.recover(folder, replay, make_durable) >= 3
    assert set(acked) <= set(replayed)
    assert _segments(tmp_path) == []


def _fsynced_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths ``os.fsync`` is called on from now on, in order."""
    synced: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return synced


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/self/fd")
def test_the_journal_folders_name_is_synced_before_the_first_sync_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment's name is durable only once the names of the folders above it are: the
    first sync (a 202) must not return before ``.journal``'s name in the lake root (and the
    root's own, when the lake made it) is synced — whoever created ``.journal`` (the lake's
    lock makes it too). Failed before: only ``.journal`` itself was fsynced."""
    synced = _fsynced_paths(monkeypatch)
    root = tmp_path / "data" / "lake"
    lake = FsspecLake(str(root))
    assert synced[:2] == [str(tmp_path), str(tmp_path / "data")]  # "data"'s name, "lake"'s
    synced.clear()
    assert lake.put_if_absent_unsynced("landing/x/a.json", b"A")
    lake.sync()
    assert str(root) in synced, synced
    lake.checkpoint()

    other = tmp_path / "other"
    lake = FsspecLake(str(other))
    with lake.exclusive():  # makes .journal (for its lock file), never syncing its name
        pass
    synced.clear()
    assert lake.put_if_absent_unsynced("landing/x/a.json", b"A")
    lake.sync()
    assert str(other) in synced, synced
    lake.checkpoint()


class _ErrseqDisk:
    """A filesystem whose write-back errors are reported as Linux does (errseq): ``syncfs``
    through a descriptor fails once for each error since the descriptor was opened (or since
    it last reported one), and never for an error before its opening."""

    def __init__(self) -> None:
        self.errors = 0
        self.seen: dict[int, int] = {}  # descriptor -> errors already reported to it
        self.used: list[int] = []

    def open(self, path: str, flags: int, *args: int, **kwargs: object) -> int:
        fd = os.open(path, flags, *args, **kwargs)  # type: ignore[arg-type]
        self.seen[fd] = self.errors
        return fd

    def syncfs(self, fd: int) -> int:
        import ctypes
        import errno

        self.used.append(fd)
        if self.seen.get(fd, self.errors) < self.errors:
            self.seen[fd] = self.errors
            ctypes.set_errno(errno.EIO)
            return -1
        return 0


class _OsWith:
    """The ``os`` module with ``open`` replaced (for one module's view of it)."""

    def __init__(self, opener: object) -> None:
        self.open = opener

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)


@pytest.mark.skipif(base_mod._SYNCFS is None, reason="Linux syncfs")
def test_a_write_back_error_before_the_checkpoint_is_reported_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write-back error between a 202 and its checkpoint (the object's pages failed to
    reach the disk) must fail that checkpoint, so the journal segment — the only durable copy
    — stays for recovery. Linux reports it only to descriptors opened before it: a syncfs
    through a descriptor opened for the call (the old code) succeeded, and the segment was
    deleted. A forked child syncs through a descriptor of its own."""
    disk = _ErrseqDisk()
    monkeypatch.setattr(base_mod, "_SYNCFS", disk.syncfs)
    monkeypatch.setattr(base_mod, "os", _OsWith(disk.open))
    lake = FsspecLake(str(tmp_path))
    assert lake.put_if_absent_unsynced("landing/x/a.json", b"A")
    lake.sync()  # acknowledged
    disk.errors += 1  # the object's write-back fails
    lake.checkpoint()
    assert len(_segments(tmp_path)) == 1  # kept: its record is the only durable copy
    reopened = FsspecLake(str(tmp_path))  # (this writer is done: the next opener replays it)
    assert reopened.recovered == 1
    assert _segments(tmp_path) == [] and reopened.get("landing/x/a.json") == b"A"

    handle = reopened._syncfs_handle
    assert handle is not None
    handle.syncfs()
    parents = disk.used[-1]
    pid = os.fork()
    if pid == 0:  # the child must not advance the error cursor of its parent's descriptor
        try:
            handle.syncfs()
            os._exit(0 if disk.used[-1] != parents else 1)
        except BaseException:
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0
    handle.syncfs()
    assert disk.used[-1] == parents
    reopened.close()


def test_close_waits_a_bounded_time_for_a_checkpoint_a_failing_disk_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A syncfs a failing disk holds up must not hang shutdown: close gives up after
    ``close_wait_s``, says so, and leaves the segment (the acknowledged bytes' only durable
    copy) on disk; the checkpoint, when it returns at last, deletes it. The old close waited
    for it for good."""
    entered, release = threading.Event(), threading.Event()

    def make_durable(paths: set[str]) -> None:
        entered.set()
        release.wait(60)

    journal = journal_mod.Journal(str(tmp_path / ".journal"), make_durable, close_wait_s=0.5)
    journal.append(CREATE, "a/one.json", b"1", [])
    journal.sync()
    closer = threading.Thread(target=journal.close, daemon=True)
    try:
        closer.start()
        closer.join(10)
        assert not closer.is_alive(), "close() waited for the checkpoint for good"
        assert entered.is_set()
        assert "did not finish within 0.5 s" in caplog.text
        assert len(_segments(tmp_path)) == 1
    finally:
        release.set()
    for _ in range(500):
        if journal._checkpointer is None:
            break
        threading.Event().wait(0.01)
    assert journal.checkpoints == 1 and _segments(tmp_path) == []


def test_a_close_whose_sync_fails_still_stops_the_checkpointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a disk that fails both the journal's fdatasync and the checkpoints, close raises
    for the sync but still shuts the journal down: no thread left retrying for good on a
    journal nobody holds (the old close raised at once and orphaned it), and the segments
    stay on disk for recovery."""

    def make_durable(paths: set[str]) -> None:
        raise OSError(5, "Input/output error")

    journal = journal_mod.Journal(
        str(tmp_path / ".journal"), make_durable, max_age_s=0.0, retry_s=0.01, close_wait_s=2.0
    )
    journal.append(CREATE, "a/one.json", b"1", [])
    journal.sync()  # retired: its checkpoint fails in the background
    journal.append(CREATE, "a/two.json", b"2", [])

    def eio(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_mod, "_datasync", eio)
    with pytest.raises(OSError):
        journal.close()
    assert journal._closed
    for _ in range(300):
        if journal._checkpointer is None:
            break
        threading.Event().wait(0.01)
    assert journal._checkpointer is None
    on_disk = {key for s in _segments(tmp_path) for _, key, _ in read_records(s.read_bytes())}
    assert "a/one.json" in on_disk


@pytest.mark.skipif(not base_mod._TMPFILE_LINKS, reason="Linux O_TMPFILE")
def test_unsynced_creates_link_nameless_files_made_ahead(tmp_path: Path) -> None:
    """Unsynced creates take their inode from a pool a background thread fills (the round
    only writes and links); each pooled file is used once, a lost race keeps the winner's
    bytes, a forked child never takes its parent's files, and a checkpoint closes them."""
    lake = FsspecLake(str(tmp_path))
    before = _open_fds()
    assert lake.put_if_absent_unsynced("landing/x/a.json", b"A")  # starts the pool
    pool = lake._inodes
    assert pool is not None
    for _ in range(500):
        if len(pool._fds) == pool._size:
            break
        threading.Event().wait(0.01)
    # A snapshot first: the filler thread may append while fstat (which frees the GIL) runs.
    ready = {os.fstat(fd).st_ino for fd in tuple(pool._fds)}
    assert len(ready) == pool._size
    keys = [f"landing/x/{i}.json" for i in range(pool._size // 2)]
    for i, key in enumerate(keys):
        assert lake.put_if_absent_unsynced(key, f"{i}".encode())
    assert not lake.put_if_absent_unsynced(keys[0], b"other")  # link refuses: the key exists
    assert [lake.get(k) for k in keys] == [f"{i}".encode() for i in range(len(keys))]
    linked = {(tmp_path / k).stat().st_ino for k in keys}
    assert len(linked) == len(keys) and linked <= ready  # the pool's files, each used once
    assert not linked & {os.fstat(fd).st_ino for fd in tuple(pool._fds)}
    pid = os.fork()
    if pid == 0:  # a child must make its own files, never write into its parent's
        os._exit(0 if pool.take() is None else 1)
    assert os.waitpid(pid, 0)[1] == 0
    lake.sync()
    lake.checkpoint()
    pool._thread.join(5)
    assert not pool._fds and _open_fds() <= before
    assert lake.get(keys[1]) == b"1"


@pytest.mark.skipif(not base_mod._TMPFILE_LINKS, reason="Linux O_TMPFILE")
def test_an_unsynced_create_of_a_key_in_place_frees_no_nameless_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-send (its key exists) is answered by ``link`` itself, with no look-up first: the
    pooled nameless file it wrote goes back to the pool emptied, and the next create takes
    it. One made and freed per re-send cost an inode each, and ext4 scans past recently
    freed inodes on every later create. The kept bytes are the first's."""
    lake = FsspecLake(str(tmp_path))
    assert lake.put_if_absent_unsynced("landing/x/a.json", b"A")  # starts the pool
    pool = lake._inodes
    assert pool is not None
    taken: list[int | None] = []
    given: list[int] = []
    take, give_back = pool.take, pool.give_back
    monkeypatch.setattr(pool, "take", lambda: taken.append(take()) or taken[-1])
    monkeypatch.setattr(pool, "give_back", lambda fd: given.append(fd) or give_back(fd))
    assert not lake.put_if_absent_unsynced("landing/x/a.json", b"A")
    assert not lake.put_if_absent_unsynced("landing/x/a.json", b"other bytes, longer")
    assert lake.get("landing/x/a.json") == b"A"
    assert len(taken) == 2 and given == taken  # both given back, none freed
    assert os.fstat(given[-1]).st_size == 0  # emptied
    assert lake.put_if_absent_unsynced("landing/x/b.json", b"B")
    assert taken[-1] == given[-1]  # the next create wrote the one given back
    assert lake.get("landing/x/b.json") == b"B"  # its bytes alone, from offset 0
    lake.sync()
    lake.checkpoint()
    assert lake.get("landing/x/b.json") == b"B"


@pytest.mark.skipif(not base_mod._TMPFILE_LINKS, reason="Linux O_TMPFILE")
def test_nameless_files_are_linked_through_proc_where_empty_path_links_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without CAP_DAC_READ_SEARCH ``linkat(AT_EMPTY_PATH)`` answers ENOENT: the link is made
    through /proc instead, and the refused way is not tried again."""
    import ctypes
    import errno

    calls: list[int] = []

    def refused(*args: object) -> int:
        calls.append(1)
        ctypes.set_errno(errno.ENOENT)
        return -1

    monkeypatch.setattr(base_mod, "_LINKAT", refused)
    monkeypatch.setattr(base_mod, "_empty_path_links", True)
    lake = FsspecLake(str(tmp_path))
    assert lake.put_if_absent_unsynced("landing/x/a.json", b"A")
    assert lake.put_if_absent_unsynced("landing/x/b.json", b"B")
    assert not lake.put_if_absent_unsynced("landing/x/a.json", b"A")
    assert calls == [1] and base_mod._empty_path_links is False
    assert lake.get("landing/x/a.json") == b"A" and lake.get("landing/x/b.json") == b"B"
    lake.checkpoint()


def test_recovery_makes_intact_objects_durable_before_deleting_their_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer killed after its sync (SIGKILL, OOM: not a power loss) leaves its objects
    intact in the page cache, not on disk. Recovery finds them equal to their records, and
    deleting the segment then drops the only durable copy of acknowledged bytes: a power loss
    in the next seconds would lose them. So every record's object (and the folders up to the
    root) is made durable before its segment goes, whether it was rewritten or not."""
    _killed_writer(tmp_path)  # nothing touched afterwards: every object reads back intact
    synced: list[set[str]] = []
    original = FsspecLake._make_durable

    def recording(self: FsspecLake, paths: set[str]) -> None:
        synced.append(set(paths))
        original(self, paths)

    monkeypatch.setattr(FsspecLake, "_make_durable", recording)
    lake = open_lake(str(tmp_path))
    assert lake.recovered == 1  # type: ignore[attr-defined]
    assert _segments(tmp_path) == []
    covered = set().union(*synced)
    root = str(tmp_path)
    for key in ("landing/x/a.json", "landing/x/b.json", "ids/x/c.json"):
        full = f"{root}/{key}"
        assert full in covered, (key, synced)
        folder = os.path.dirname(full)
        while folder != root:  # each folder's name lives in its parent
            assert os.path.dirname(folder) in covered, (folder, synced)
            folder = os.path.dirname(folder)
    assert lake.get("ids/x/c.json") == b"C2"


def test_recovery_writes_intact_objects_again_in_place(tmp_path: Path) -> None:
    """After a write-back error (why a writer keeps a segment for recovery) an object can
    read back intact from the page cache while the disk lacks it; its pages are clean, so the
    recovery's syncfs would not write them. Recovery writes its bytes again into the same
    inode (a rename over the key meanwhile stays unharmed). Failed before: untouched."""
    _killed_writer(tmp_path)
    objects = [tmp_path / k for k in ("landing/x/a.json", "landing/x/b.json", "ids/x/c.json")]
    before = {p: p.stat() for p in objects}
    for p in objects:  # an mtime in the past: a write (even of the same bytes) moves it
        os.utime(p, ns=(before[p].st_atime_ns, before[p].st_mtime_ns - 10**9))
    lake = open_lake(str(tmp_path))
    assert lake.recovered == 1  # type: ignore[attr-defined]
    for p in objects:
        after = p.stat()
        assert after.st_ino == before[p].st_ino  # in place
        assert after.st_mtime_ns > before[p].st_mtime_ns - 10**9, p  # written again
    assert [p.read_bytes() for p in objects] == [b"A" * 100, b"B" * 100, b"C2"]


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="POSIX fork")
def test_a_forked_child_journals_into_segments_of_its_own(tmp_path: Path) -> None:
    """A child forked from a process with an open journal must not append to its parent's
    segment: both write the next record at the same offset, so one process's acknowledged
    record is overwritten by the other's (the old code lost the child's). The child's
    records land in a segment of its own, and the parent's segment keeps all of the
    parent's."""
    lake = FsspecLake(str(tmp_path))
    assert lake.put_if_absent_unsynced("landing/x/parent-1.json", b"P1")
    lake.sync()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if lake.put_if_absent_unsynced("landing/x/child.json", b"C"):
                lake.sync()  # acknowledged by the child
                code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    assert lake.put_if_absent_unsynced("landing/x/parent-2.json", b"P2")
    lake.sync()
    records = {
        s.name: [key for _, key, _ in read_records(s.read_bytes())] for s in _segments(tmp_path)
    }
    parents = [keys for keys in records.values() if "landing/x/parent-1.json" in keys]
    assert parents == [["landing/x/parent-1.json", "landing/x/parent-2.json"]], records
    assert any(keys == ["landing/x/child.json"] for keys in records.values()), records
    lake.checkpoint()


@pytest.mark.skipif(base_mod._SYNCFS is None, reason="Linux syncfs")
def test_a_child_forked_while_a_thread_holds_the_syncfs_lock_can_still_sync(
    tmp_path: Path,
) -> None:
    """A fork while a checkpoint thread holds the descriptor's lock (its bookkeeping around
    a syncfs) left the child's copy of the lock held for good: its first syncfs hung."""
    import time

    lake = FsspecLake(str(tmp_path))
    handle = lake._syncfs_handle
    assert handle is not None
    with handle._lock:  # as a parent's thread would, at the moment of the fork
        pid = os.fork()
        if pid == 0:
            try:
                handle.syncfs()
            finally:
                os._exit(0)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert status == 0
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's syncfs hung on its parent's lock")
    lake.close()


@pytest.mark.skipif(not base_mod._TMPFILE_LINKS, reason="Linux O_TMPFILE")
def test_a_forked_child_closes_its_copies_of_the_pooled_nameless_files(tmp_path: Path) -> None:
    """The child never takes from its parent's inode pool (its files are the parent's), so
    its copies of their descriptors (up to the pool's size) must not stay open in it."""
    import time

    lake = FsspecLake(str(tmp_path))
    assert lake.put_if_absent_unsynced("landing/x/a.json", b"A")  # starts the pool
    pool = lake._inodes
    assert pool is not None
    deadline = time.monotonic() + 10
    while len(pool._fds) < pool._size // 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    inherited = set(pool._fds)
    assert inherited
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            still_open = 0
            for fd in inherited:
                try:
                    os.fstat(fd)
                    still_open += 1
                except OSError:
                    pass
            code = 0 if still_open == 0 else 1
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, "copies left open in the child"
    lake.checkpoint()
