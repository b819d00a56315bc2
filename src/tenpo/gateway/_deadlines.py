"""HTTP connections that must make progress: a head within a deadline, a body that keeps coming.

uvicorn closes a keep-alive connection that stays *idle*, but not one that never finishes a
request: a client that connects and sends nothing, trickles a request head a byte at a time,
or announces a body and stops sending it holds its connection (and, mid-body, the request's
task) for good. A few thousand such clients exhaust the server's descriptors and no store's
data gets in. :func:`deadline_protocol` wraps uvicorn's protocol class with two limits:

* **head deadline** — a request's head (request line and headers) must be complete within
  ``head_timeout_s`` of the connection opening, or of the previous response's end;
* **body idle limit** — while a body is being received, no more than ``body_idle_timeout_s``
  may pass without a byte (a slow uplink keeps going; a stalled sender does not). Time the
  server itself holds the client never counts: it stopped reading (flow control while the
  app is busy), or the client awaits the ``100 Continue`` sent when the app first reads.

A connection past either limit gets a ``408`` problem (when no response has started) and is
closed; the request's handler sees a disconnect, so nothing is acknowledged or landed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from typing import Any

import orjson

__all__ = ["deadline_protocol"]

log = logging.getLogger(__name__)

_HEAD, _BODY = "head", "body"
LINGER_S = 2.0
"""After a 408, how long the server drains what the client still sends before it closes."""


def _base_protocol() -> type[asyncio.Protocol]:
    """The protocol uvicorn's ``http="auto"`` would pick: httptools when installed, else h11."""
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


def _timeout_response(detail: str) -> bytes:
    body = orjson.dumps(
        {"type": "about:blank", "title": "Request Timeout", "status": 408, "detail": detail}
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def deadline_protocol(
    head_timeout_s: float, body_idle_timeout_s: float, body_min_rate: float = 0.0
) -> type[Any]:
    """uvicorn's HTTP protocol class with a head deadline, a body idle limit (seconds) and,
    when ``body_min_rate`` > 0, a body's lowest average rate (bytes/s) once it has been
    coming for longer than the idle limit."""
    if head_timeout_s <= 0 or body_idle_timeout_s <= 0 or body_min_rate < 0:
        raise ValueError("HTTP deadlines must be positive")
    base: Any = _base_protocol()

    class DeadlineProtocol(base):
        """uvicorn's protocol; a connection that stops making progress is answered 408."""

        head_timeout: float = head_timeout_s
        body_idle_timeout: float = body_idle_timeout_s

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            # One lazy timer per connection: progress only moves ``_due`` (a float), and the
            # timer, when it fires early, re-schedules itself for what is left. Re-arming a
            # timer per request would cost a call_later and a cancel on the hot path.
            self._timer: asyncio.TimerHandle | None = None
            self._fires_at = 0.0
            self._due = 0.0
            self._waiting: str | None = None
            self._watched: Any = None
            self._held = False
            """The server held the client (see _expired) when the timer last fired."""
            self._draining = False
            """A 408 was sent: what the client still sends is dropped until it closes."""
            self._rate_since = 0.0
            self._body_bytes = 0
            """Body bytes received since ``_rate_since`` (the body's start or the last hold)."""
            self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._waiting = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._draining:
                return  # after a 408: read and dropped, never parsed
            if self._waiting == _BODY:
                self._body_bytes += len(data)
            super().data_received(data)
            self._progress()

        def eof_received(self) -> bool | None:
            if self._draining:
                self.transport.close()  # the client has closed its side: done lingering
                return None
            return super().eof_received()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_head()

        # -- deadlines -------------------------------------------------------------------
        def _arm(self, waiting: str, seconds: float) -> None:
            self._waiting = waiting
            self._held = False
            self._due = due = self.loop.time() + seconds
            if self._timer is None or due < self._fires_at:
                if self._timer is not None:
                    self._timer.cancel()
                self._fires_at = due
                self._timer = self.loop.call_at(due, self._expired)

        def _disarm(self) -> None:
            self._waiting = None  # the timer, if any, finds nothing to do and lapses

        def _await_head(self) -> None:
            # The head of the next request must arrive; a newer cycle means it has.
            self._watched = self.cycle
            self._arm(_HEAD, head_timeout_s)

        def _progress(self) -> None:
            if self.transport is None or self.transport.is_closing():
                self._disarm()
                return
            cycle = self.cycle
            if self._waiting == _HEAD and cycle is not self._watched:
                self._receiving_body(cycle)
            elif self._waiting == _BODY:
                if cycle is self._watched and cycle.more_body and not cycle.response_complete:
                    self._arm(_BODY, body_idle_timeout_s)  # bytes came: the limit restarts
                    if body_min_rate:
                        self._check_rate()
                else:
                    self._disarm()

        def _check_rate(self) -> None:
            # A byte just before each idle limit would hold the connection for good: past the
            # idle limit, the body must also average body_min_rate since it began (or since
            # the server last held the client).
            elapsed = self.loop.time() - self._rate_since
            if elapsed > body_idle_timeout_s and self._body_bytes < body_min_rate * elapsed:
                self._time_out(
                    f"the request's body is too slow: {self._body_bytes} bytes in "
                    f"{elapsed:.0f} s, under {body_min_rate:g} bytes/s"
                )

        def _receiving_body(self, cycle: Any) -> None:
            self._watched = cycle
            self._rate_since, self._body_bytes = self.loop.time(), 0
            if cycle.more_body and not cycle.response_complete:
                self._arm(_BODY, body_idle_timeout_s)
            else:
                self._disarm()

        def _expired(self) -> None:
            self._timer = None
            if self._waiting is None or self.transport is None or self.transport.is_closing():
                return
            if self.transport.get_protocol() is not self:
                return  # upgraded (WebSocket): that protocol owns the connection now
            if self.loop.time() < self._due:  # progress since it was scheduled
                self._fires_at = self._due
                self._timer = self.loop.call_at(self._due, self._expired)
                return
            cycle = self.cycle
            if self._waiting == _HEAD and cycle is not None and not cycle.response_complete:
                # A request (pipelined, or one whose head was parsed meanwhile) is being
                # served: its head did arrive; the handler's time is not the client's.
                self._receiving_body(cycle)
                return
            held = self.flow.read_paused or (
                # Expect: 100-continue: the client sends its body once told to, which uvicorn
                # does when the app first reads it.
                cycle is not None
                and not cycle.response_complete
                and getattr(cycle, "waiting_for_100_continue", False)
            )
            if held or self._held:
                # The server held the client (it stopped reading, or has not asked for the
                # body yet): not stalled. A hold that ended within this period still earns a
                # full one from now: the client may have been let go a moment ago.
                self._arm(self._waiting or _BODY, body_idle_timeout_s)
                self._held = held
                self._rate_since, self._body_bytes = self.loop.time(), 0
                return
            if self._waiting == _HEAD:
                detail = f"the request's head did not arrive within {head_timeout_s:g} s"
            else:
                detail = f"the request's body stalled: no byte for {body_idle_timeout_s:g} s"
            self._time_out(detail)

        def _time_out(self, detail: str) -> None:
            cycle = self.cycle
            log.info("closing %s: %s", _peer(self.client), detail)
            started = cycle is not None and not cycle.response_complete and cycle.response_started
            if cycle is not None and not cycle.response_complete:
                # The handler sees a disconnect now; nothing it sends goes out after the 408.
                cycle.disconnected = True
                cycle.message_event.set()
            self._waiting = None
            if started:
                self.transport.close()
                return
            self.transport.write(_timeout_response(detail))
            self._linger()

        def _linger(self) -> None:
            # A close with the client's bytes unread (or arriving after it) makes the kernel
            # send a reset, which can discard the 408 before the client reads it. So: end our
            # side, discard what still comes, and close once the client has closed too or after
            # LINGER_S at the most (as nginx's lingering close).
            self._draining = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.flow.resume_reading()
            self._timer = self.loop.call_later(LINGER_S, self.transport.close)

    DeadlineProtocol.__name__ = f"Deadline{base.__name__}"
    return DeadlineProtocol


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"
