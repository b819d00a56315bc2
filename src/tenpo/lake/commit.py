"""Group commit: concurrent writers share one durability round.

A writer puts its objects with the lake's ``*_unsynced`` methods, then calls
:meth:`GroupCommit.commit` with what should follow durability (an event to publish). One
committer thread runs rounds: it takes every commit asked so far, makes the lake durable
(:meth:`tenpo.lake.Lake.sync`: one ``syncfs`` for all of them), hands the items of the round
to ``flush`` (one bus transaction), and only then releases their writers. A round starts
after every commit it covers was asked, hence after the writes before it, so nobody returns
— and no gateway answers 202 — before its bytes are on disk. Writers that arrive while a
round runs form the next one: the busier the gateway, the more requests per ``syncfs``.

:meth:`GroupCommit.commit_async` is the same for an asyncio caller: the event loop awaits
the round instead of parking a thread on it (the committer wakes each loop once per round).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from tenpo.core.errors import LakeError, TenpoError
from tenpo.lake.base import Lake

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_Work = tuple[Callable[[], tuple[T, R]], asyncio.AbstractEventLoop, "asyncio.Future[R]"]
"""A :meth:`GroupCommit.submit_async` call: its work, its caller's loop and future."""

_IDLE_EXIT_S = 5.0
"""The committer thread ends after this long without commits (a new one starts on demand)."""


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
        self._asked = 0  # tickets handed out
        self._done = 0  # tickets covered by a finished round
        self._items: list[T] = []
        self._failures: list[tuple[int, int, BaseException]] = []  # (first, last, error)
        self._works: list[_Work[T, Any]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.rounds = 0
        """Rounds run so far (for tests and benchmarks)."""

    def commit(self, item: T) -> None:
        """Return once a round that began after this call made the lake durable and flushed
        ``item``; raise that round's :class:`LakeError` or flush error otherwise."""
        with self._cond:
            self._asked += 1
            ticket = self._asked
            self._items.append(item)
            self._start()
            self._cond.notify_all()
            while self._done < ticket:
                self._cond.wait()
            for first, last, error in self._failures:
                if first <= ticket <= last:
                    raise copy.copy(error)  # one object per waiter: each gets its own traceback

    def commit_async(self, item: T) -> asyncio.Future[None]:
        """:meth:`commit` for a caller on an event loop: a future of the running loop, done
        once a round that began after this call made the lake durable and flushed ``item``
        (or failed with that round's error). Await it; it never blocks the loop."""
        return self.submit_async(lambda: (item, None))

    def submit_async(self, work: Callable[[], tuple[T, R]]) -> asyncio.Future[R]:
        """Run ``work`` in the committer's next round, then make the lake durable and flush
        its item; a future of the running loop with ``work``'s result, done after both.

        ``work`` does the blocking writes (``*_unsynced``) and returns ``(item, result)``;
        what it raises is the future's exception (and nothing is flushed for it). The
        round runs the works of every caller that asked so far one after the other, then
        one ``sync`` and one ``flush`` for all: an event loop pays no thread hop per
        request, only one wake-up per round.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._cond:
            self._asked += 1
            self._works.append((work, loop, future))
            self._start()
            self._cond.notify_all()
        return future

    def _start(self) -> None:
        """The committer thread, started if none runs (under _cond)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Finish the pending rounds and stop the committer thread (a later commit starts a
        new one)."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join()
        with self._cond:
            self._stopping = False

    def _run(self) -> None:
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while self._asked == self._done:
                    idle = self._stopping or time.monotonic() - idle_since > _IDLE_EXIT_S
                    if idle:
                        self._thread = None
                        return
                    self._cond.wait(timeout=_IDLE_EXIT_S)
            if self._window_s > 0:
                time.sleep(self._window_s)
            with self._cond:
                first, last = self._done + 1, self._asked
                items, self._items = self._items, []
                works, self._works = self._works, []
            done: list[tuple[_Work[T, Any], Any, BaseException | None]] = []
            for work in works:
                item, result, failed = _attempt(work[0])
                if failed is None:
                    items.append(item)  # type: ignore[arg-type] # set when the work succeeded
                done.append((work, result, failed))
            error = self._round(items)
            _wake(done, error)
            with self._cond:
                self._done = last
                self.rounds += 1
                # Keep only failures that a waiter of a recent round may still look up.
                self._failures = [f for f in self._failures if f[1] > last - 100_000]
                if error is not None:
                    self._failures.append((first, last, error))
                self._cond.notify_all()

    def _round(self, items: list[T]) -> BaseException | None:
        try:
            self._lake.sync()
            self._flush(items)
        except TenpoError as exc:
            log.error("group commit of %d writes failed: %s", len(items), exc)
            return exc
        except Exception as exc:  # a broken flush must not strand its writers
            log.exception("group commit of %d writes failed", len(items))
            return LakeError(f"cannot commit the writes: {exc}")
        return None


def _attempt(work: Callable[[], tuple[T, R]]) -> tuple[T | None, R | None, BaseException | None]:
    try:
        item, result = work()
    except Exception as exc:  # noqa: BLE001 - it is that caller's answer
        return None, None, exc
    return item, result, None


def _wake(
    done: list[tuple[_Work[T, Any], Any, BaseException | None]], error: BaseException | None
) -> None:
    """Settle the async callers of a finished round: one wake-up per event loop."""
    by_loop: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
    ] = {}
    for (_, loop, future), result, failed in done:
        outcome = failed if failed is not None else error
        by_loop.setdefault(loop, []).append((future, result, outcome))
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
            future.set_exception(copy.copy(error))
