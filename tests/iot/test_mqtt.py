"""MQTT subscriber against a real broker: batching, acks after landing, identity, bad input."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from tenpo.iot.mqtt import (
    QUARANTINE_TABLE,
    ControlPlaneOwners,
    MqttSubscriber,
    device_topic,
    parse_topic,
    subscription,
)
from tenpo.iot.preetl import MQTT_BATCH, MQTT_FRAMES, frame, read_frames
from tenpo.streamer import Streamer, read_table
from tenpo.warehouse import Warehouse
from tests.iot.conftest import Chain, Publisher, count_event, wait_for

pytestmark = pytest.mark.integration


def subscriber(chain: Chain) -> MqttSubscriber:
    return MqttSubscriber(
        chain.settings,
        chain.lake,
        chain.landing(),
        chain.control.directory(),
        owners=ControlPlaneOwners(chain.control),
    )


def load(chain: Chain) -> Streamer:
    streamer = Streamer(chain.settings, chain.lake, chain.bus, chain.control.directory())
    streamer.run_until_idle(timeout=0.3)
    return streamer


def counts(chain: Chain) -> list[dict[str, object]]:
    with Warehouse(chain.lake) as wh:
        rows = wh.to_arrow(wh.table("raw_iot_counts")).to_pylist()
    return sorted(rows, key=lambda r: (str(r["device_id"]), int(r["seq"])))  # type: ignore[call-overload]


def test_topics() -> None:
    assert subscription() == "tenpo/+/devices/+/events"
    assert device_topic("acme", "pc-1") == "tenpo/acme/devices/pc-1/events"
    assert parse_topic("tenpo/acme/devices/pc-1/events") == ("acme", "pc-1")
    for bad, why in [
        ("tenpo/acme/devices/pc-1", "is not tenpo/{tenant}/devices/{device}/events"),
        ("other/acme/devices/pc-1/events", "is not"),
        ("tenpo/ACME/devices/pc-1/events", "invalid tenant id 'ACME'"),
        ("tenpo/acme/devices/.x/events", "invalid device id '.x'"),
    ]:
        with pytest.raises(ValueError, match=why.replace("{", r"\{").replace("}", r"\}")):
            parse_topic(bad)


def test_batches_land_then_ack_and_load_once(chain: Chain, publisher: Publisher) -> None:
    sub = subscriber(chain)
    sub.start()
    try:
        wait_for(sub.subscribed.is_set, what="subscription")
        for seq in range(1, 301):
            tenant, device = ("t1", "pc-001") if seq % 3 else ("t2", "pc-002")
            publisher.publish(chain.topic(tenant, device), count_event(device, seq, seq % 600))
        publisher.wait()
        wait_for(lambda: sub.stats.acked == 300, what="300 acks")
    finally:
        sub.join()
    assert sub.stats.accepted == 300 and sub.stats.rejected == {}
    assert sub.stats.events == 300
    objects = chain.lake.list("landing/iot/")
    # Batched: a handful of objects per tenant, not one per message.
    assert 2 <= len(objects) <= 12, objects
    # Each message is kept byte for byte, after a header line naming its topic and size.
    header, payload = next(read_frames(chain.lake.get(objects[0])))
    assert set(header) == {"topic", "device_id", "received_at", "mid", "dup", "bytes"}
    assert header["bytes"] == len(payload) and json.loads(payload)["type"] == "count"
    published = {json.dumps(count_event(d, n, n % 600)).encode() for d, n in
                 [("pc-001" if n % 3 else "pc-002", n) for n in range(1, 301)]}  # fmt: skip
    landed = [p for key in objects for _, p in read_frames(chain.lake.get(key))]
    assert len(landed) == 300 and set(landed) == published
    load(chain)
    rows = counts(chain)
    assert len(rows) == 300
    assert {(r["device_id"], r["tenant_id"]) for r in rows} == {("pc-001", "t1"), ("pc-002", "t2")}
    assert sorted(int(r["seq"]) for r in rows) == list(range(1, 301))  # type: ignore[call-overload]
    r = next(r for r in rows if r["seq"] == 10)
    assert (r["count_in"], r["count_out"], r["line"]) == (3, 0, "entrance")


def test_bad_input_is_quarantined_and_counted(chain: Chain, publisher: Publisher) -> None:
    sub = subscriber(chain)
    sub.start()
    try:
        wait_for(sub.subscribed.is_set, what="subscription")
        t1 = chain.topic("t1", "pc-001")
        publisher.publish(chain.topic("t2", "pc-001"), count_event("pc-001", 1))  # wrong tenant
        publisher.publish(chain.topic("t1", "pc-404"), count_event("pc-404", 1))  # unknown
        publisher.publish(t1, b"{not json")
        publisher.publish(t1, b"\xff\xfe")
        publisher.publish(t1, b"[" + b" " * 5000 + b"]")  # over the 4096-byte limit
        publisher.publish(t1, count_event("pc-002", 1))  # t1's device writing as t2's pc-002
        publisher.publish(f"{chain.prefix}/T1/devices/pc-001/events", count_event("pc-001", 1))
        # Event-level problems: the message is landed, the streamer's Pre-ETL quarantines them.
        publisher.publish(t1, count_event("pc-001", 2, **{"in": -4}))
        publisher.publish(t1, count_event("pc-001", 3, interval_end="2026-11-02T09:00:00+09:00"))
        publisher.publish(
            t1,
            count_event(
                "pc-001", 4,
                interval_start="2099-01-01T00:00:00+09:00",
                interval_end="2099-01-01T00:01:00+09:00",
            ),
        )  # fmt: skip
        publisher.publish(t1, [count_event("pc-001", 5), count_event("pc-001", 6, minute=1)])
        publisher.wait()
        wait_for(lambda: sub.stats.acked == 11, what="11 acks")
        assert sub._thread is not None and sub._thread.is_alive()  # never crashed
    finally:
        sub.join()
    assert dict(sub.stats.rejected) == {
        "wrong_tenant": 1, "unknown_device": 1, "malformed_json": 2, "too_large": 1,
        "device_mismatch": 1, "bad_topic": 1,
    }  # fmt: skip
    assert sub.stats.accepted == 4 and sub.stats.events == 5
    quarantined = [
        json.loads(line)
        for key in chain.lake.list(f"quarantine/{QUARANTINE_TABLE}/")
        for line in chain.lake.get(key).splitlines()
    ]
    reasons = {q["category"]: q["reason"] for q in quarantined}
    assert "belongs to another tenant, not 't2'" in reasons["wrong_tenant"]
    assert "unknown device 'pc-404' for tenant 't1'" in reasons["unknown_device"]
    assert "exceeds the limit of 4096" in reasons["too_large"]
    assert "published on the topic of device 'pc-001'" in reasons["device_mismatch"]
    assert "invalid tenant id 'T1'" in reasons["bad_topic"]
    # The wrong-tenant message is kept under the topic's tenant, never landed for it.
    assert any("tenant=t2/" in k for k in chain.lake.list(f"quarantine/{QUARANTINE_TABLE}/"))
    assert chain.lake.list("landing/iot/tenant=t2/") == []
    load(chain)
    assert [r["seq"] for r in counts(chain)] == [5, 6]
    event_rejects = [
        json.loads(line)["reason"]
        for key in chain.lake.list("quarantine/raw_iot_counts/")
        for line in chain.lake.get(key).splitlines()
    ]
    assert len(event_rejects) == 3
    assert any("in: Input should be greater than or equal to 0" in r for r in event_rejects)
    assert any("is not after interval_start" in r for r in event_rejects)
    assert any("is more than 1 day" in r for r in event_rejects)


def test_persistent_session_delivers_what_was_published_while_down(
    chain: Chain, publisher: Publisher
) -> None:
    sub = subscriber(chain)
    sub.start()
    wait_for(sub.subscribed.is_set, what="subscription")
    sub.join()  # clean stop: the broker keeps the session
    topic = chain.topic("t1", "pc-001")
    for seq in range(1, 51):
        publisher.publish(topic, count_event("pc-001", seq, seq))
    publisher.wait()
    again = subscriber(chain)
    again.start()
    try:
        wait_for(lambda: again.stats.acked == 50, what="50 messages queued while down")
    finally:
        again.join()
    load(chain)
    assert [r["seq"] for r in counts(chain)] == list(range(1, 51))


def test_duplicates_never_double_count(chain: Chain) -> None:
    """Same (device, seq) with other content, and same (device, line, interval) with another
    seq, in separate objects and batches: each counts once (warehouse read)."""
    sub = subscriber(chain)
    received = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    sub.clock = lambda: received
    topic = chain.topic("t1", "pc-001")
    original = count_event("pc-001", 7, minute=0, **{"in": 5})
    sub.receive(1, topic, json.dumps([original, count_event("pc-001", 8, minute=1)]).encode())
    sub.flush()
    # A re-send: same seq, different interval (device bug) — and the same interval, new seq.
    sub.receive(2, topic, json.dumps(count_event("pc-001", 7, minute=5, **{"in": 9})).encode())
    sub.receive(3, topic, json.dumps(count_event("pc-001", 9, minute=0, **{"in": 6})).encode())
    sub.flush()
    sub.receive(4, topic, json.dumps(original).encode(), dup=True)  # broker redelivery
    sub.flush()
    assert len(chain.lake.list("landing/iot/")) == 3
    for key in chain.lake.list("landing/iot/"):
        assert chain.lake.get(key).startswith(b'{"topic"')
    load(chain)
    rows = counts(chain)
    # Which of two conflicting copies wins is the warehouse's rule (smallest object id); what
    # matters is that no seq and no (line, interval) is ever counted twice.
    seqs = [r["seq"] for r in rows]
    starts = [(r["line"], r["interval_start"]) for r in rows]
    assert len(seqs) == len(set(seqs)) and len(starts) == len(set(starts)), rows
    assert 8 in seqs and set(seqs) <= {7, 8, 9}
    # On disk both copies of seq 7 may be kept; only the read deduplicates them.
    assert len(read_table(chain.lake, "raw_iot_counts")) >= len(rows)


def test_batch_object_is_parsed_with_the_topic_device(chain: Chain) -> None:
    """The Pre-ETL re-checks a batch object: an event naming another device is refused."""
    from tenpo.iot import IotPreEtl

    line = {
        "topic": chain.topic("t1", "pc-001"),
        "device_id": "pc-001",
        "received_at": "2026-11-02T02:00:00+00:00",
        "mid": 1,
        "dup": False,
        "payload": json.dumps([count_event("pc-001", 1), count_event("pc-002", 2)]),
    }
    data = (json.dumps(line) + "\n{broken\n").encode()
    landed = chain.landing().land("iot", "t1", data, "jsonl", content_type=MQTT_BATCH)
    result = IotPreEtl().parse(landed.event, data, chain.control.directory())
    assert result.tables["raw_iot_counts"]["seq"].to_pylist() == [1]
    reasons = sorted(r.reason for r in result.rejects)
    assert "published on the topic of device 'pc-001'" in reasons[0]
    assert reasons[1].startswith("message 2: malformed MQTT batch line")


def test_frames_object_is_parsed_with_the_topic_device(chain: Chain) -> None:
    """A frames object keeps payloads as received; the Pre-ETL re-checks each against its topic,
    and a broken frame rejects the rest of the object (nothing after it can be located)."""
    from tenpo.iot import IotPreEtl

    at = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    topic = chain.topic("t1", "pc-001")
    mixed = json.dumps([count_event("pc-001", 1), count_event("pc-002", 2)]).encode()
    odd = b'{"v":1,"device_id":"pc-001","seq":3,"type":"count","line":"entrance",' + (
        b'"interval_start":"2026-11-02T10:03:00+09:00","interval_end":"2026-11-02T10:04:00+09:00",'
        b'"in":1,"out":2}\n\n'  # a payload ending in newlines is framed by its length
    )
    data = (
        frame(topic, "pc-001", at, 1, False, mixed)
        + frame(topic, "pc-001", at, 2, True, odd)
        + frame(topic, "pc-001", at, 3, False, b"[not json")
        + b'{"topic":"x","device_id":"pc-001","received_at":"2026-11-02T02:00:00+00:00",'
        + b'"bytes":99}\nab'
    )
    assert [p for _, p in read_frames(data[: data.index(b'{"topic":"x"')])] == [
        mixed, odd, b"[not json",
    ]  # fmt: skip
    landed = chain.landing().land("iot", "t1", data, "frames", content_type=MQTT_FRAMES)
    result = IotPreEtl().parse(landed.event, data, chain.control.directory())
    assert result.tables["raw_iot_counts"]["seq"].to_pylist() == [1, 3]
    assert result.tables["raw_iot_counts"]["count_out"].to_pylist() == [1 % 5, 2]
    reasons = [r.reason for r in result.rejects]
    assert len(reasons) == 3, reasons
    assert "published on the topic of device 'pc-001'" in reasons[0]
    assert reasons[1].startswith("message 3: malformed JSON payload")
    assert reasons[2].startswith("message 4: malformed MQTT frame")


def test_read_frames_refuses_bad_lengths() -> None:
    at = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    good = frame("t/x/devices/d/events", "d", at, 1, False, b"[]")
    assert list(read_frames(good)) == [(json.loads(good.split(b"\n")[0]), b"[]")]
    for bad in (
        good[:-1],  # payload not followed by its newline
        good.replace(b'"bytes":2', b'"bytes":3'),  # length runs past the end
        good.replace(b'"bytes":2', b'"bytes":-1'),
        good.replace(b'"bytes":2', b'"bytes":"2"'),
        good.split(b"\n")[0],  # header without end of line
        b"[1]\n[]\n",  # header not an object
    ):
        with pytest.raises(ValueError):
            list(read_frames(bad))


def test_a_failed_landing_acks_nothing_and_is_retried(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenpo.core.errors import LakeError

    sub = subscriber(chain)
    acked: list[int] = []

    class Client:
        def ack(self, mid: int, qos: int) -> None:
            acked.append(mid)

    sub._client = Client()
    land = sub.landing.land

    def broken(*args: object, **kwargs: object) -> object:
        raise LakeError("disk full")

    monkeypatch.setattr(sub.landing, "land", broken)
    sub.receive(7, chain.topic("t1", "pc-001"), json.dumps(count_event("pc-001", 1)).encode())
    assert sub.flush() == 0 and acked == [] and sub.stats.flush_failures == 1
    assert not sub._due()  # backing off
    monkeypatch.setattr(sub.landing, "land", land)
    sub._retry_at = 0.0
    assert sub.flush() == 1 and acked == [7]
    assert len(chain.lake.list("landing/iot/")) == 1


def test_quarantined_messages_keep_their_bytes_exactly(chain: Chain) -> None:
    """A refused message is kept whole: no 64 KiB cut, no replacement characters (issue 11)."""
    sub = subscriber(chain)
    limit = chain.settings.mqtt_max_message_bytes
    big_text = ("あ" * (70 * 1024)).encode()  # 210 KiB of valid UTF-8, over the limit
    big_binary = bytes(range(256)) * 400  # 100 KiB, not UTF-8
    sent = {
        1: (chain.topic("t1", "pc-001"), big_text),
        2: (chain.topic("t1", "pc-001"), big_binary),
        3: (f"{chain.prefix}/T1/devices/pc-001/events", b"\xff\xfe{\x00bad topic"),
        4: (f"{chain.prefix}/t1/devices/pc-001", "caf\u00e9 \U0001f600".encode()),
    }
    for mid, (topic, payload) in sent.items():
        sub.receive(mid, topic, payload)
    assert sub.flush() == 4
    lines = [
        json.loads(line)
        for key in chain.lake.list(f"quarantine/{QUARANTINE_TABLE}/")
        for line in chain.lake.get(key).splitlines()
    ]
    assert len(lines) == 4
    by_mid = {q["mid"]: q for q in lines}
    for mid, (topic, payload) in sent.items():
        q = by_mid[mid]
        kept = (
            q["payload"].encode("utf-8")
            if "payload" in q
            else base64.b64decode(q["payload_base64"])
        )
        assert kept == payload and q["bytes"] == len(payload) and q["topic"] == topic
    assert len(big_text) > 65536 and len(big_binary) > limit
    assert {q["category"] for q in lines} == {"too_large", "bad_topic"}
    assert "payload_base64" in by_mid[2] and "payload_base64" in by_mid[3]
    assert "payload" in by_mid[1] and "payload" in by_mid[4]
