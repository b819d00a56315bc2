"""The edge box's upload spool: closed chunks wait on local disk until the gateway has them.

:class:`ChunkSpool` keeps each chunk as one file ``{start}_{frames}.mp4`` in a folder (written
to a temporary name, fsynced, renamed: a crash leaves either the whole chunk or a ``.tmp``
that the next start removes), so a restart picks up every chunk not yet uploaded. It is
bounded by ``max_bytes``; when a new chunk does not fit (the bound, or the disk itself is
full) the **oldest** waiting chunks are dropped to make room — only as a last resort, the
newest recording being the one the store still needs — and every drop is reported: logged,
counted in :meth:`ChunkSpool.status`, and appended to ``dropped.jsonl``.

:class:`ChunkUploader` sends the waiting chunks oldest first to
``POST /v1/video/{camera_id}/chunks``. 2xx (new or already there) removes the file; network
errors, 5xx, 408/429 and auth failures (401/403: an operator must fix the key; the chunk is
kept) are retried with exponential back-off; other 4xx (the gateway refuses this chunk for
good) move it to ``rejected/`` with the problem's detail, reported, never silently deleted.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx

from tenpo.core.errors import BadInput
from tenpo.core.ids import utcnow
from tenpo.video.chunks import FRAMES_HEADER, MP4, SHA256_HEADER, START_HEADER, format_chunk_ts

__all__ = ["ChunkSpool", "ChunkUploader", "DrainResult", "SpoolEntry"]

log = logging.getLogger(__name__)

_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class SpoolEntry:
    """One chunk waiting in the spool."""

    path: Path
    start: datetime
    frames: int
    size: int

    @property
    def name(self) -> str:
        return self.path.name


def _parse(path: Path) -> SpoolEntry | None:
    stem = path.name.removesuffix(".mp4")
    stamp, _, frames = stem.rpartition("_")
    try:
        start = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
        return SpoolEntry(path, start, int(frames), path.stat().st_size)
    except (ValueError, OSError):
        return None


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class ChunkSpool:
    """A bounded folder of chunks awaiting upload (safe to share between two threads)."""

    def __init__(
        self,
        folder: Path,
        max_bytes: int = 4 * 1024**3,
        *,
        write: Callable[[Path, bytes], None] = _write_file,
    ) -> None:
        if max_bytes < 1:
            raise BadInput(f"spool max_bytes must be positive, got {max_bytes}")
        self.folder = folder
        self.max_bytes = max_bytes
        self._write = write
        self._lock = threading.Lock()
        self.dropped_now = 0  # by this process
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rejected").mkdir(exist_ok=True)
        for tmp in folder.glob("*.tmp"):  # a crash mid-write: the chunk was never complete
            log.warning("spool: removing incomplete %s", tmp.name)
            tmp.unlink(missing_ok=True)

    def pending(self) -> list[SpoolEntry]:
        """The waiting chunks, oldest first."""
        found = (_parse(p) for p in self.folder.glob("*.mp4"))
        return sorted((e for e in found if e is not None), key=lambda e: e.start)

    def used_bytes(self) -> int:
        """Bytes of the waiting chunks."""
        return sum(e.size for e in self.pending())

    def put(self, start: datetime, frames: int, data: bytes) -> SpoolEntry | None:
        """Keep a closed chunk; None when it could not be kept at all (reported as dropped)."""
        name = f"{format_chunk_ts(start)}_{frames}.mp4"
        path = self.folder / name
        with self._lock:
            if len(data) > self.max_bytes:
                self._report_drop(name, frames, len(data), "larger than the whole spool")
                return None
            waiting = self.pending()
            used = sum(e.size for e in waiting)
            while waiting and used + len(data) > self.max_bytes:
                oldest = waiting.pop(0)
                used -= oldest.size
                self._drop(oldest, f"spool over {self.max_bytes} bytes")
            tmp = path.with_suffix(".tmp")
            while True:
                try:
                    self._write(tmp, data)
                    os.replace(tmp, path)
                    break
                except OSError as exc:
                    tmp.unlink(missing_ok=True)
                    if exc.errno not in _FULL:
                        raise
                    if not waiting:
                        self._report_drop(name, frames, len(data), "disk full, spool empty")
                        return None
                    self._drop(waiting.pop(0), "disk full")
        log.info("spool: kept %s (%d bytes)", name, len(data))
        return SpoolEntry(path, start.astimezone(UTC), frames, len(data))

    def remove(self, entry: SpoolEntry) -> None:
        """The gateway has the chunk: forget it."""
        with self._lock:
            entry.path.unlink(missing_ok=True)

    def reject(self, entry: SpoolEntry, reason: str) -> None:
        """The gateway refused the chunk for good: keep it aside with the reason."""
        with self._lock:
            target = self.folder / "rejected" / entry.name
            os.replace(entry.path, target)
            target.with_suffix(".reason.txt").write_text(reason + "\n", encoding="utf-8")
        log.error("spool: gateway refused %s: %s", entry.name, reason)

    def rejected(self) -> list[str]:
        """Names of the chunks the gateway refused."""
        return sorted(p.name for p in (self.folder / "rejected").glob("*.mp4"))

    def dropped(self) -> list[dict[str, object]]:
        """Every chunk ever dropped from this spool (``dropped.jsonl``)."""
        ledger = self.folder / "dropped.jsonl"
        if not ledger.exists():
            return []
        lines = ledger.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def status(self) -> dict[str, int]:
        """Waiting chunks and bytes, chunks dropped (ever) and refused by the gateway."""
        waiting = self.pending()
        return {
            "pending": len(waiting),
            "bytes": sum(e.size for e in waiting),
            "dropped": len(self.dropped()),
            "rejected": len(self.rejected()),
        }

    def _drop(self, entry: SpoolEntry, reason: str) -> None:
        entry.path.unlink(missing_ok=True)
        self._report_drop(entry.name, entry.frames, entry.size, reason)

    def _report_drop(self, name: str, frames: int, size: int, reason: str) -> None:
        self.dropped_now += 1
        log.warning("spool: DROPPED chunk %s (%d frames, %d bytes): %s", name, frames, size, reason)
        record = {
            "chunk": name,
            "frames": frames,
            "bytes": size,
            "reason": reason,
            "at": utcnow().isoformat(),
        }
        try:
            with open(self.folder / "dropped.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError:  # the disk may be full: the log line above still reports it
            log.warning("spool: could not record the drop in dropped.jsonl", exc_info=True)


@dataclass
class DrainResult:
    """What one pass over the spool did."""

    uploaded: int = 0
    already: int = 0
    rejected: int = 0
    retry: bool = False
    error: str = ""
    names: list[str] = field(default_factory=list)


_RETRY = frozenset({401, 403, 408, 425, 429})


class ChunkUploader:
    """Sends a spool's chunks to the gateway, oldest first, with back-off on failure."""

    def __init__(
        self,
        spool: ChunkSpool,
        client: httpx.Client,
        camera_id: str,
        api_key: str,
        *,
        base_delay_s: float = 1.0,
        max_delay_s: float = 300.0,
    ) -> None:
        self.spool = spool
        self.client = client
        self.camera_id = camera_id
        self.api_key = api_key
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.failures = 0
        self.uploaded = 0

    def send(
        self, entry: SpoolEntry
    ) -> tuple[Literal["uploaded", "already", "rejected", "retry"], str]:
        """Upload one chunk: the outcome and, on failure, why."""
        import hashlib

        data = entry.path.read_bytes()
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": MP4,
            START_HEADER: entry.start.isoformat(),
            FRAMES_HEADER: str(entry.frames),
            SHA256_HEADER: hashlib.sha256(data).hexdigest(),
        }
        try:
            resp = self.client.post(
                f"/v1/video/{self.camera_id}/chunks", content=data, headers=headers
            )
        except httpx.TransportError as exc:
            return "retry", f"{type(exc).__name__}: {exc}"
        if resp.is_success:
            self.spool.remove(entry)
            created = bool(resp.json().get("created", True))
            return ("uploaded" if created else "already"), ""
        detail = _detail(resp)
        if resp.status_code >= 500 or resp.status_code in _RETRY:
            return "retry", f"HTTP {resp.status_code}: {detail}"
        self.spool.reject(entry, f"HTTP {resp.status_code}: {detail}")
        return "rejected", detail

    def drain(self) -> DrainResult:
        """Send every waiting chunk, oldest first; stop at the first one to retry later."""
        result = DrainResult()
        for entry in self.spool.pending():
            outcome, why = self.send(entry)
            if outcome == "retry":
                self.failures += 1
                result.retry, result.error = True, why
                log.warning("upload of %s failed (%s); will retry", entry.name, why)
                break
            self.failures = 0
            result.names.append(entry.name)
            if outcome == "uploaded":
                result.uploaded += 1
            elif outcome == "already":
                result.already += 1
            else:
                result.rejected += 1
        self.uploaded += result.uploaded + result.already
        return result

    def delay(self) -> float:
        """Seconds to wait before the next pass (exponential in the failures in a row)."""
        if not self.failures:
            return self.base_delay_s
        return min(self.max_delay_s, self.base_delay_s * 2 ** min(self.failures - 1, 20))

    def run(self, stop: threading.Event, *, drain_seconds: float = 30.0) -> None:
        """Drain until ``stop`` is set, then keep trying for up to ``drain_seconds`` more."""
        while not stop.is_set():
            self.drain()
            stop.wait(self.delay())
        deadline = time.monotonic() + drain_seconds
        while self.spool.pending():
            result = self.drain()
            left = deadline - time.monotonic()
            if not result.retry or left <= 0:
                break
            time.sleep(min(self.delay(), left))


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    return str(body.get("detail", body))[:500] if isinstance(body, dict) else str(body)[:200]
