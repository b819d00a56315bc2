"""Device health end to end: MQTT batch → streamer → Dagster assets → datamart → API."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from tenpo.api import create_app
from tenpo.datamart import get_engine
from tenpo.iot.mqtt import MqttSubscriber
from tenpo.pipelines import materialize_dates
from tenpo.pipelines.devices import DATAMART_DEVICE_HEALTH_KEY, MART_DEVICE_HEALTH_KEY
from tenpo.streamer import Streamer
from tests.iot.conftest import Chain, count_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = date(2026, 11, 2)


def test_health_from_mqtt_to_the_api(chain: Chain) -> None:
    sub = MqttSubscriber(chain.settings, chain.lake, chain.landing(), chain.control.directory())
    sub.clock = lambda: datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    topic = chain.topic("t1", "pc-001")
    # 10:00-10:04 with 10:02 missing; two heartbeats, the second with a low battery.
    events = [
        count_event("pc-001", seq, minute) for seq, minute in ((1, 0), (2, 1), (3, 3), (4, 4))
    ]
    events += [
        {"v": 1, "device_id": "pc-001", "seq": 5, "type": "heartbeat",
         "ts": "2026-11-02T10:00:00+09:00", "status": "ok", "battery": 0.5},
        {"v": 1, "device_id": "pc-001", "seq": 6, "type": "heartbeat",
         "ts": "2026-11-02T10:15:00+09:00", "status": "ok", "battery": 0.1},
    ]  # fmt: skip
    sub.receive(1, topic, json.dumps(events).encode())
    sub.flush()
    Streamer(chain.settings, chain.lake, chain.bus, chain.control.directory()).run_until_idle(
        timeout=0.3
    )
    materialize_dates(chain.settings, [DAY], [MART_DEVICE_HEALTH_KEY, DATAMART_DEVICE_HEALTH_KEY])

    _, t1_key = chain.control.create_api_key("t1", "read", ["read"])
    _, t2_key = chain.control.create_api_key("t2", "read", ["read"])
    app = create_app(
        chain.settings, engine=get_engine(chain.settings.datamart_db_url), control=chain.control
    )
    with TestClient(app) as client:
        resp = client.get(
            "/v1/devices/health", params={"date": "2026-11-02"},
            headers={"Authorization": f"Bearer {t1_key}"},
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["date"] == "2026-11-02"
        (pc1,) = body["items"]
        assert pc1["device_id"] == "pc-001"
        # The store has no opening hours: 24 h of 1-minute slots for each of the two registered
        # lines (entrance, passby) are expected; it sent four entrance minutes.
        assert (pc1["intervals_expected"], pc1["intervals_received"]) == (2 * 1440, 4)
        assert len(pc1["incomplete_hours"]) == 24 and pc1["incomplete_hours"][10] == "10:00+09:00"
        assert pc1["heartbeats"] == 2 and pc1["battery_min"] == 0.1
        # The last heartbeat (10:15 JST) arrived at 12:00 JST: the day was delivered late.
        assert pc1["flags"] == ["delivered_late", "low_battery", "missing_intervals"]
        assert pc1["clock_skew_s"] == -6300.0
        # The latest date by default; another tenant sees only its own device (no data).
        latest = client.get("/v1/devices/health", headers={"Authorization": f"Bearer {t1_key}"})
        assert latest.json()["date"] == "2026-11-02"
        other = client.get(
            "/v1/devices/health", params={"date": "2026-11-02"},
            headers={"Authorization": f"Bearer {t2_key}"},
        ).json()  # fmt: skip
        assert [i["device_id"] for i in other["items"]] in ([], ["pc-002"])
        assert all(i["device_id"] != "pc-001" for i in other["items"])
        bad = client.get(
            "/v1/devices/health", params={"date": "02/11/2026"},
            headers={"Authorization": f"Bearer {t1_key}"},
        )  # fmt: skip
        assert bad.status_code == 422 and "YYYY-MM-DD" in bad.json()["detail"]
        assert client.get("/v1/devices/health").status_code == 401


def test_history_loaded_later_is_judged_from_its_first_report(chain: Chain) -> None:
    """A device registered today sends old history: silent dates after its first report are
    ``no_data`` (the old rule started at the registration date and flagged nothing)."""
    sub = MqttSubscriber(chain.settings, chain.lake, chain.landing(), chain.control.directory())
    sub.clock = lambda: datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    events = [count_event("pc-001", seq, minute) for seq, minute in ((1, 0), (2, 1))]
    sub.receive(1, chain.topic("t1", "pc-001"), json.dumps(events).encode())
    sub.flush()
    Streamer(chain.settings, chain.lake, chain.bus, chain.control.directory()).run_until_idle(
        timeout=0.3
    )
    later = [date(2026, 11, 3), date(2026, 11, 4)]  # only the silent dates are materialized
    materialize_dates(chain.settings, later, [MART_DEVICE_HEALTH_KEY, DATAMART_DEVICE_HEALTH_KEY])
    _, t1_key = chain.control.create_api_key("t1", "read", ["read"])
    app = create_app(
        chain.settings, engine=get_engine(chain.settings.datamart_db_url), control=chain.control
    )
    with TestClient(app) as client:
        for day in later:
            body = client.get(
                "/v1/devices/health", params={"date": day.isoformat()},
                headers={"Authorization": f"Bearer {t1_key}"},
            ).json()  # fmt: skip
            (pc1,) = body["items"]
            assert pc1["flags"] == ["no_data", "no_heartbeat"]
            # No interval configured and none reported that day: the slots are unknown.
            assert pc1["last_seen"] is None and pc1["intervals_received"] == 0
