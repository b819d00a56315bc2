"""A lake opened while another process replays a dead writer's journal waits for that replay
(found by review: it used to skip the segments being replayed as a live writer's, then serve —
repairing an acknowledged claim with other bytes, 202 instead of 409, and overwriting the
acknowledged object)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tenpo.bus.memory import MemoryBus
from tenpo.core.errors import Conflict
from tenpo.lake import FsspecLake, LandingZone
from tenpo.lake.keys import claim_key

_WRITER = """
import os, signal, sys
from tenpo.bus.memory import MemoryBus
from tenpo.lake import FsspecLake, LandingZone
zone = LandingZone(FsspecLake(sys.argv[1]), MemoryBus(), group_commit=True)
landed = zone.land("iot", "t1", b'{"events": [1]}', "json", idempotency_key="k1")
print(landed.event.object_id, landed.event.key, flush=True)  # the sender heard 202
os.kill(os.getpid(), signal.SIGKILL)  # no checkpoint: the journal is all that is durable
"""


def test_an_opener_waits_for_another_replay_then_refuses_other_bytes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WRITER, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    object_id, key = proc.stdout.split()
    # What a power loss leaves of the unsynced claim and object: empty files.
    (tmp_path / claim_key("iot", "t1", object_id)).write_bytes(b"")
    (tmp_path / key).write_bytes(b"")
    # Another process's open is replaying right now: it holds the lake's lock and the segments.
    journal = tmp_path / ".journal"
    held = [os.open(journal / "lake.lock", os.O_RDWR | os.O_CREAT)]
    held += [os.open(seg, os.O_RDONLY) for seg in sorted(journal.glob("*.log"))]
    assert len(held) > 1
    for fd in held:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    opened: list[FsspecLake] = []
    opener = threading.Thread(target=lambda: opened.append(FsspecLake(str(tmp_path))))
    try:
        opener.start()
        opener.join(1.0)
        assert opener.is_alive() and not opened, "the lake opened during another's replay"
    finally:
        for fd in held:  # that process is gone before finishing: this opener replays
            os.close(fd)
    opener.join(30)
    assert opened, "the opener never finished"
    lake = opened[0]
    assert lake.get(key) == b'{"events": [1]}'  # the acknowledged bytes are back
    zone = LandingZone(lake, MemoryBus(), group_commit=True)
    try:
        with pytest.raises(Conflict):  # other bytes under the acknowledged upload's key
            zone.land("iot", "t1", b'{"events": [2]}', "json", idempotency_key="k1")
    finally:
        zone.close()
    assert lake.get(key) == b'{"events": [1]}'
