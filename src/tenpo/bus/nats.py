"""The production event bus: NATS JetStream (nats-py, asyncio) behind the synchronous interface.

One stream ``{stream}`` captures the subjects ``{stream}.>``; topic ``objects.registered``
is subject ``{stream}.objects.registered``. Each (consumer, topic) is a durable pull consumer
``{consumer}__{topic}`` (dots as ``_``) with explicit acks, ``ack_wait`` and deliver-all, so
it sees every event still in the stream, including those published before it existed.

Publishing is idempotent through JetStream's de-duplication: the ``Nats-Msg-Id`` header is
``{topic}:{event_id}`` (scoped per topic, as in the SQLite bus). The server only remembers ids
for the stream's duplicate window (:data:`DUPLICATE_WINDOW_S`); an event re-published later
is stored again, so consumers must be idempotent (tenpo's streamer is).

nats-py is asyncio-only: the bus runs an event loop in a daemon thread and every public
method submits a coroutine to it and waits for the result with a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)

from tenpo.bus._common import (
    check_consumer,
    check_event_id,
    check_fetch_args,
    check_topic,
    encode_payload,
)
from tenpo.bus.base import Delivery, EventBus, decode
from tenpo.core.errors import BadInput, BusError

__all__ = ["DUPLICATE_WINDOW_S", "NatsBus"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DUPLICATE_WINDOW_S = 15 * 60.0
"""How long JetStream remembers event ids for de-duplication (when it creates the stream)."""

EVENT_ID_HEADER = "Tenpo-Event-Id"
MIN_FETCH_S = 0.01  # nats-py rejects a zero fetch timeout


class NatsBus(EventBus):
    """Event bus on a NATS JetStream stream; one connection and loop thread per instance."""

    def __init__(
        self,
        url: str,
        stream: str,
        ack_wait: float,
        *,
        connect_timeout: float = 3.0,
        request_timeout: float = 5.0,
    ) -> None:
        if ack_wait <= 0:
            raise BadInput(f"ack_wait must be > 0 seconds, got {ack_wait!r}")
        check_consumer(stream, "stream name")  # one subject token, like a consumer name
        self.url = url
        self.stream = stream
        self.ack_wait = float(ack_wait)
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._subscriptions: dict[tuple[str, str], JetStreamContext.PullSubscription] = {}
        # Loop-thread state: one pull at a time per subscription (nats-py's fetch shares a
        # queue), one consumer creation at a time.
        self._fetch_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._create_lock = asyncio.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"tenpo-nats-{stream}", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            self._nc, self._js = self._run(
                self._connect(), 2 * connect_timeout + request_timeout, "connect"
            )
        except BaseException:
            self._stop_loop()
            raise
        log.debug("nats bus connected to %s, stream %s", url, stream)

    # -- EventBus ---------------------------------------------------------------------------

    def publish(self, topic: str, payload: dict[str, Any], event_id: str) -> None:
        """Publish on ``{stream}.{topic}`` and wait for the stream's acknowledgement."""
        check_topic(topic)
        check_event_id(event_id)
        data = encode_payload(payload)
        headers = {"Nats-Msg-Id": f"{topic}:{event_id}", EVENT_ID_HEADER: event_id}
        ack = self._run(
            self._js.publish(self._subject(topic), data, headers=headers, stream=self.stream),
            self.request_timeout + 1,
            f"publish on {topic}",
        )
        if ack.duplicate:
            log.debug("event %s on %s was already published", event_id, topic)

    def fetch(
        self, topic: str, consumer: str, max_events: int = 100, timeout: float = 1.0
    ) -> list[Delivery]:
        """Pull up to ``max_events`` from the durable consumer, waiting at most ``timeout`` s."""
        check_topic(topic)
        check_consumer(consumer)
        check_fetch_args(max_events, timeout)
        wait = max(timeout, MIN_FETCH_S)
        return self._run(
            self._fetch(topic, consumer, max_events, wait),
            wait + self.request_timeout + 1,
            f"fetch {topic} for {consumer}",
        )

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge and wait for the server to record it (acking twice is harmless)."""
        msg = self._msg_of(delivery)
        self._run(self._settle(msg, ack=True), self.request_timeout + 1, "ack")

    def nak(self, delivery: Delivery) -> None:
        """Negatively acknowledge: the server redelivers the event at once."""
        msg = self._msg_of(delivery)
        self._run(self._settle(msg, ack=False), self.request_timeout + 1, "nak")

    def pending(self, topic: str, consumer: str) -> int:
        """Events not yet acknowledged by ``consumer``: not yet delivered plus in flight."""
        check_topic(topic)
        check_consumer(consumer)
        return self._run(
            self._pending(topic, consumer), self.request_timeout + 1, f"pending {topic}"
        )

    def close(self) -> None:
        """Flush pending acks, close the connection and stop the loop thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._drain(), self.request_timeout + 1, "close", closing=True)
        except BusError as exc:
            log.warning("closing the nats bus: %s", exc)
        finally:
            self._stop_loop()

    # -- coroutines (run on the loop thread) ------------------------------------------------

    async def _connect(self) -> tuple[Client, JetStreamContext]:
        nc = await nats.connect(
            self.url,
            name="tenpo",
            connect_timeout=max(1, round(self.connect_timeout)),
            # nats-py hangs on a refused first connect without reconnects; one retry bails out.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
        )
        # Once connected, ride out server restarts instead of closing for good.
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 1.0
        js = nc.jetstream(timeout=self.request_timeout)
        try:
            await self._ensure_stream(js)
        except BaseException:
            await nc.close()
            raise
        return nc, js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.stream}.>"],
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        # Creating an identical stream concurrently from another process is not an error.
        await js.add_stream(config)
        log.info("created JetStream stream %s (subjects %s.>)", self.stream, self.stream)

    async def _subscription(self, topic: str, consumer: str) -> JetStreamContext.PullSubscription:
        key = (consumer, topic)
        if key in self._subscriptions:
            return self._subscriptions[key]
        async with self._create_lock:
            if key in self._subscriptions:
                return self._subscriptions[key]
            durable = f"{consumer}__{topic}".replace(".", "_")
            config = ConsumerConfig(
                name=durable,
                durable_name=durable,
                filter_subject=self._subject(topic),
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.ack_wait,
            )
            # Create-or-update: an existing durable keeps its progress, takes the new ack_wait.
            await self._js.add_consumer(self.stream, config)
            sub = await self._js.pull_subscribe_bind(durable=durable, stream=self.stream)
            self._subscriptions[key] = sub
            return sub

    async def _fetch(
        self, topic: str, consumer: str, max_events: int, timeout: float
    ) -> list[Delivery]:
        sub = await self._subscription(topic, consumer)
        lock = self._fetch_locks.setdefault((consumer, topic), asyncio.Lock())
        async with lock:
            try:
                msgs = await sub.fetch(batch=max_events, timeout=timeout)
            except TimeoutError:
                return []
        deliveries = []
        for msg in msgs:
            try:
                payload = decode(msg.data)
            except ValueError as exc:
                # Not written by tenpo: redelivering it would only fail again.
                log.error("dropping undecodable event on %s (seq %s): %s", topic, msg.reply, exc)
                await msg.term()
                continue
            headers = msg.headers or {}
            event_id = headers.get(EVENT_ID_HEADER) or headers.get("Nats-Msg-Id", "")
            deliveries.append(
                Delivery(
                    topic=topic,
                    event_id=event_id,
                    payload=payload,
                    attempt=msg.metadata.num_delivered,
                    token=msg,
                )
            )
        return deliveries

    async def _settle(self, msg: Msg, *, ack: bool) -> None:
        try:
            if ack:
                await msg.ack_sync(timeout=self.request_timeout)
            else:
                await msg.nak()
                await self._nc.flush(timeout=max(1, round(self.request_timeout)))
        except nats.errors.MsgAlreadyAckdError:
            log.debug("delivery %s was already acknowledged", msg.reply)

    async def _pending(self, topic: str, consumer: str) -> int:
        sub = await self._subscription(topic, consumer)
        info = await sub.consumer_info()
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def _drain(self) -> None:
        # Not ``nc.drain()``: it waits on pull subscriptions' queues, which never empty.
        if self._nc.is_closed:
            return
        for sub in self._subscriptions.values():
            await sub.unsubscribe()
        self._subscriptions.clear()
        await self._nc.flush(timeout=max(1, round(self.request_timeout)))
        await self._nc.close()

    @staticmethod
    async def _cancel_leftovers() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats %s: %s", self.url, exc)

    async def _on_disconnect(self) -> None:
        if self._closed:
            return
        log.warning("disconnected from nats %s; reconnecting", self.url)

    async def _on_reconnect(self) -> None:
        log.info("reconnected to nats %s", self.url)

    # -- plumbing ---------------------------------------------------------------------------

    def _run(
        self, coro: Coroutine[Any, Any, T], timeout: float, what: str, *, closing: bool = False
    ) -> T:
        """Run ``coro`` on the loop thread; nats and timeout errors become :class:`BusError`."""
        if self._closed and not closing:
            coro.close()
            raise BusError(f"NATS bus {self.stream!r} is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError as exc:  # concurrent.futures' and asyncio's are the builtin
            future.cancel()
            raise BusError(
                f"NATS {self.url}: {what} timed out after {timeout:.1f}s (server unreachable?)"
            ) from exc
        except nats.errors.NoServersError as exc:
            raise BusError(f"NATS {self.url} is unreachable: {what} failed") from exc
        except nats.js.errors.ServiceUnavailableError as exc:
            raise BusError(f"NATS {self.url}: JetStream is not enabled ({what})") from exc
        except (nats.errors.Error, OSError) as exc:
            raise BusError(f"NATS {self.url}: {what} failed: {exc!r}") from exc

    def _stop_loop(self) -> None:
        self._closed = True
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._cancel_leftovers(), self._loop).result(2)
            except TimeoutError:
                log.warning("nats bus tasks did not stop within 2s")
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def _msg_of(self, delivery: Delivery) -> Msg:
        msg = delivery.token
        if not isinstance(msg, Msg) or msg._client is not self._nc:
            raise BusError(f"delivery of event {delivery.event_id!r} was not fetched from {self}")
        return msg

    def _subject(self, topic: str) -> str:
        return f"{self.stream}.{topic}"

    def __repr__(self) -> str:
        return f"NatsBus({self.url!r}, stream={self.stream!r}, ack_wait={self.ack_wait})"
