"""The gateway's connections: the streamer's ledger it reads for batch status is opened once
and closed when the app shuts down; an injected one stays the caller's."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tenpo.gateway import create_app
from tenpo.streamer import LoadLedger
from tests.gateway.conftest import Gateway


class SpyLedger(LoadLedger):
    """A ledger that counts its closes."""

    closes = 0

    def close(self) -> None:
        SpyLedger.closes += 1
        super().close()


def test_the_ledger_is_opened_once_and_closed_on_shutdown(gateway: Gateway) -> None:
    g = gateway
    app = create_app(g.settings, control=g.control, lake=g.lake, bus=g.bus)
    holder = app.state.gateway.ledger
    assert not holder.is_open  # nothing opened before a status is asked
    with TestClient(app) as client:
        for _ in range(2):
            answer = client.get("/v1/pos/batches/nothing", headers=g.auth())
            assert answer.status_code == 404
        opened = holder.get()
        assert holder.get() is opened  # one ledger for every request
    assert not holder.is_open  # closed with the app


def test_an_injected_ledger_stays_open(gateway: Gateway) -> None:
    g = gateway
    ledger = SpyLedger(g.settings.streamer_db_url)
    app = create_app(g.settings, control=g.control, lake=g.lake, bus=g.bus, ledger=ledger)
    with TestClient(app) as client:
        assert client.get("/v1/pos/batches/nothing", headers=g.auth()).status_code == 404
        assert app.state.gateway.ledger.get() is ledger
    assert SpyLedger.closes == 0
    ledger.close()
    assert SpyLedger.closes == 1
