"""Group commit: concurrent writers share one durability round.

A writer puts its objects with the lake's ``*_unsynced`` methods, then calls
:meth:`GroupCommit.commit` with what should follow durability (an event to publish). One
committer thread runs rounds: it takes every commit asked so far, makes the lake durable
(:meth:`tenpo.lake.Lake.sync`: one ``syncfs`` for all of them), hands the items of the round
to ``flush`` (one bus transaction), and only then releases their writers. A round starts
after every commit it covers was asked, hence after the writes before it, so nobody returns
— and no gateway answers 202 — before its bytes are on disk. Writers that arrive while a
round runs form the next one: the busier the gateway, the more requests per ``syncfs``.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from tenpo.core.errors import LakeError, TenpoError
from tenpo.lake.base import Lake

log = logging.getLogger(__name__)

T = TypeVar("T")

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
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            while self._done < ticket:
                self._cond.wait()
            for first, last, error in self._failures:
                if first <= ticket <= last:
                    raise copy.copy(error)  # one object per waiter: each gets its own traceback

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
                    if self._stopping or time.monotonic() - idle_since > _IDLE_EXIT_S:
                        self._thread = None
                        return
                    self._cond.wait(timeout=_IDLE_EXIT_S)
            if self._window_s > 0:
                time.sleep(self._window_s)
            with self._cond:
                first, last = self._done + 1, self._asked
                items, self._items = self._items, []
            error = self._round(items)
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
