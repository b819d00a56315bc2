"""Group commit: concurrent writers share one durability round.

A writer puts its objects with the lake's ``*_unsynced`` methods, then calls
:meth:`GroupCommit.commit` with what should follow durability (an event to publish). A
*syncer* thread runs rounds: it takes every commit asked so far and makes the lake durable
(:meth:`tenpo.lake.Lake.sync`: one journal ``fdatasync`` for all of them); a *publisher*
thread then hands the round's items to ``flush`` (one bus transaction), and only then are
its writers released. A round starts after every commit it covers was asked, hence after
the writes before it, so nobody returns — and no gateway answers 202 — before its bytes are
on disk and announced. Writers that arrive while a round runs form the next one: the busier
the gateway, the more requests per sync.

:meth:`GroupCommit.submit_async` is the same for an asyncio caller whose writes themselves
are blocking: a *stager* thread runs the works (the writes) as they are asked, one after the
other, and hands each finished one to the syncer; the event loop awaits the round instead of
parking a thread on it (one wake-up per loop per round). The three threads form a pipeline:
the next round's works run while a round's ``fdatasync`` waits on the disk, and that sync
while the round before is published (rounds synced meanwhile are published together, in
order), so a round costs its slowest step, not their sum — with every request of a closed
loop of clients in one round, the sum was the whole cycle.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from tenpo.core.errors import LakeError, TenpoError
from tenpo.lake.base import Lake

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_Work = tuple[Callable[[], tuple[T, R]], asyncio.AbstractEventLoop, "asyncio.Future[R]"]
"""A :meth:`GroupCommit.submit_async` call: its work, its caller's loop and future."""

_IDLE_EXIT_S = 5.0
"""Each of the committer's threads ends after this long idle (a new one starts on demand)."""


@dataclass(eq=False)
class _Waiter:
    """A thread blocked in :meth:`GroupCommit.commit` (settled under the condition)."""

    done: bool = False
    error: BaseException | None = None


@dataclass(eq=False, slots=True)
class _Ready:
    """A commit awaiting the next round: its item (None when its work failed) and whom to
    answer: a thread's waiter, or an async caller's loop and future with the work's result
    or error."""

    item: Any
    waiter: _Waiter | None = None
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[Any] | None = None
    result: Any = None
    failed: BaseException | None = None


class GroupCommit(Generic[T]):
    """Makes the unsynced writes of concurrent callers durable together, then flushes items.

    ``window_s`` is how long a round waits for more writers before it syncs (0: none; the
    time a round takes already gathers the next one).
    """

    def __init__(
        self,
        lake: Lake,
        flush: Callable[[list[T]], None],
        *,
        window_s: float = 0.0,
        name: str = "lake-commit",
    ) -> None:
        self._lake = lake
        self._flush = flush
        self._window_s = window_s
        self._name = name
        self._cond = threading.Condition()
        self._works: list[_Work[T, Any]] = []  # asked, not run yet (the stager's)
        self._ready: list[_Ready] = []  # written, awaiting a round (the syncer's)
        self._synced: list[list[_Ready]] = []  # rounds synced, awaiting the flush (in order)
        self._stager: threading.Thread | None = None
        self._syncer: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self._stopping = False
        self.rounds = 0
        """Rounds run so far (for tests and benchmarks)."""

    def commit(self, item: T) -> None:
        """Return once a round that began after this call made the lake durable and flushed
        ``item``; raise that round's :class:`LakeError` or flush error otherwise."""
        waiter = _Waiter()
        with self._cond:
            self._ready.append(_Ready(item, waiter=waiter))
            self._start_syncer()
            while not waiter.done:
                self._cond.wait()
        if waiter.error is not None:
            raise _own_copy(waiter.error)  # one object per waiter: each gets its own traceback

    def commit_async(self, item: T) -> asyncio.Future[None]:
        """:meth:`commit` for a caller on an event loop: a future of the running loop, done
        once a round that began after this call made the lake durable and flushed ``item``
        (or failed with that round's error). Await it; it never blocks the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            self._ready.append(_Ready(item, loop=loop, future=future))
            self._start_syncer()
        return future

    def submit_async(self, work: Callable[[], tuple[T, R]]) -> asyncio.Future[R]:
        """Run ``work`` in the stager thread, then make the lake durable and flush its item in
        the next round; a future of the running loop with ``work``'s result, done after both.

        ``work`` does the blocking writes (``*_unsynced``) and returns ``(item, result)``;
        what it raises is the future's exception (and nothing is flushed for it), answered
        after the next round like the others. The stager runs the works of every caller in
        the order asked, one after the other, while the syncer runs the round before: an
        event loop pays no thread hop per request, only one wake-up per round.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._cond:
            self._works.append((work, loop, future))
            if self._stager is None:
                self._stager = self._thread(self._stage_loop, "stage")
            elif len(self._works) == 1:
                self._cond.notify_all()  # (later ones find the stager awake)
        return future

    def _start_syncer(self) -> None:
        """The syncer thread, started if none runs, and woken (under _cond)."""
        if self._syncer is None:
            self._syncer = self._thread(self._sync_loop, "sync")
        else:
            self._cond.notify_all()

    def _thread(self, target: Callable[[], None], role: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"{self._name}-{role}", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Finish the pending works and rounds and stop the threads (a later commit starts
        new ones)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            stager = self._stager
        if stager is not None:
            stager.join()  # every work run and handed to the syncer...
        with self._cond:
            syncer = self._syncer
            self._cond.notify_all()
        if syncer is not None:
            syncer.join()  # ...every round synced...
        with self._cond:
            publisher = self._publisher
            self._cond.notify_all()
        if publisher is not None:
            publisher.join()  # ...and flushed
        with self._cond:
            self._stopping = False

    def _stage_loop(self) -> None:
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while not self._works:
                    if self._stopping or time.monotonic() - idle_since > _IDLE_EXIT_S:
                        self._stager = None
                        self._cond.notify_all()
                        return
                    self._cond.wait(timeout=_IDLE_EXIT_S)
                works, self._works = self._works, []
            for fn, loop, future in works:
                item, result, failed = _attempt(fn)
                ready = _Ready(item, loop=loop, future=future, result=result, failed=failed)
                with self._cond:  # at once: the round under way may still take it
                    self._ready.append(ready)
                    self._start_syncer()

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while not self._ready:
                    stopped = self._stopping and self._stager is None
                    if stopped or time.monotonic() - idle_since > _IDLE_EXIT_S:
                        self._syncer = None
                        self._cond.notify_all()
                        return
                    self._cond.wait(timeout=_IDLE_EXIT_S)
            if self._window_s > 0:
                time.sleep(self._window_s)
            with self._cond:
                batch, self._ready = self._ready, []
            error = self._guarded(self._lake.sync, len(batch))
            with self._cond:
                if error is not None:  # nothing of it is published
                    self._settle(batch, error)
                    continue
                self._synced.append(batch)
                if self._publisher is None:
                    self._publisher = self._thread(self._publish_loop, "publish")
                else:
                    self._cond.notify_all()

    def _publish_loop(self) -> None:
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while not self._synced:
                    stopped = self._stopping and self._stager is None and self._syncer is None
                    if stopped or time.monotonic() - idle_since > _IDLE_EXIT_S:
                        self._publisher = None
                        return
                    self._cond.wait(timeout=_IDLE_EXIT_S)
                # Every round synced meanwhile, in order: one flush (one bus transaction).
                batch = [ready for synced in self._synced for ready in synced]
                rounds, self._synced = len(self._synced), []
            items = [r.item for r in batch if r.failed is None]
            error = self._guarded(partial(self._flush, items), len(items))
            with self._cond:
                self._settle(batch, error, rounds)

    def _settle(self, batch: list[_Ready], error: BaseException | None, rounds: int = 1) -> None:
        """Answer every caller of a finished round (under _cond)."""
        _wake(batch, error)
        self.rounds += rounds
        for ready in batch:
            if ready.waiter is not None:
                ready.waiter.error, ready.waiter.done = error, True
        self._cond.notify_all()

    @staticmethod
    def _guarded(step: Callable[[], None], count: int) -> BaseException | None:
        """Run a round's sync or flush; the error its callers get, None when it worked."""
        try:
            step()
        except TenpoError as exc:
            log.error("group commit of %d writes failed: %s", count, exc)
            return exc
        except Exception as exc:  # a broken flush must not strand its writers
            log.exception("group commit of %d writes failed", count)
            return LakeError(f"cannot commit the writes: {exc}")
        except BaseException as exc:  # noqa: BLE001 - nor end the thread (all would wait)
            log.error("group commit of %d writes failed: %r", count, exc)
            return LakeError(f"cannot commit the writes: {exc!r}")
        return None


def _attempt(work: Callable[[], tuple[T, R]]) -> tuple[T | None, R | None, BaseException | None]:
    try:
        item, result = work()
    except Exception as exc:  # noqa: BLE001 - it is that caller's answer
        return None, None, exc
    except BaseException as exc:  # noqa: BLE001 - e.g. SystemExit: it would end the stager
        # (every later caller waiting for good), and raised as such in the caller's task it
        # would stop the event loop: the caller's answer is an error of its own.
        log.error("a group-commit work raised %r", exc)
        return None, None, LakeError(f"cannot land the upload: {exc!r}")
    return item, result, None


def _wake(batch: list[_Ready], error: BaseException | None) -> None:
    """Settle the async callers of a finished round: one wake-up per event loop."""
    by_loop: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
    ] = {}
    for ready in batch:
        if ready.loop is None or ready.future is None:
            continue  # a thread's commit: settled under the condition
        outcome = ready.failed if ready.failed is not None else error
        by_loop.setdefault(ready.loop, []).append((ready.future, ready.result, outcome))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # the loop was closed meanwhile: nobody awaits these any more
            log.debug("group commit: %d waiters of a closed event loop", len(settled))


def _settle(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        if future.done():  # cancelled: its request went away (the write is durable anyway)
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(_own_copy(error))


def _own_copy(error: BaseException) -> BaseException:
    """A copy of ``error`` for one caller (each gets its own traceback), or ``error`` itself
    when it cannot be copied (e.g. its ``__init__`` takes keyword-only arguments): raised
    here, the callback would stop and leave every later caller of its round waiting."""
    try:
        return copy.copy(error)
    except Exception:  # noqa: BLE001 - any failure to rebuild it
        return error
