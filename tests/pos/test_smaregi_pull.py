"""The Smaregi pull connector against a local fake of the documented API: windows of ≤ 31
days, pages, the OAuth client-credentials token, retries, the cursor, backfill, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from tenpo.bus import open_bus
from tenpo.cli import app
from tenpo.core.settings import Settings
from tenpo.lake import Lake, open_lake
from tenpo.lake.landing import LandingZone
from tenpo.pos.connectors.smaregi import SmaregiConfig, SmaregiConnector, SmaregiError
from tenpo.streamer import Streamer, read_table
from tests.data.helpers import TENANT, directory
from tests.pos._fake_smaregi import FakeSmaregi, serve

BASE = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
NOW = BASE + timedelta(days=45)


def sale(i: int) -> dict[str, Any]:
    """Transaction i at BASE + 4 h·i: one 1,100 yen item, 内税 10 % → tax 100 exactly."""
    at = BASE + timedelta(hours=4 * i)
    return {
        "transactionHeadId": str(1000 + i), "transactionHeadDivision": "1",
        "cancelDivision": "0", "subtotal": "1100", "total": "1100", "taxInclude": "100",
        "taxExclude": "0", "sellDivision": "0", "taxRounding": "1", "storeId": "1",
        "storeCode": "T01", "terminalId": "2",
        "transactionDateTime": at.isoformat(), "terminalTranDateTime": at.isoformat(),
        "updDateTime": (at + timedelta(minutes=1)).isoformat(),
        "details": [{
            "transactionDetailId": "1", "transactionDetailDivision": "1", "productId": "9",
            "productCode": "4900000000001", "productName": "弁当", "salesPrice": "1100",
            "unitDiscountPrice": "0", "quantity": "1", "taxDivision": "0", "taxRate": "10",
        }],
    }  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeSmaregi]:
    with serve(FakeSmaregi(transactions=[sale(i) for i in range(250)])) as running:
        yield running


class Rig:
    """A lake, the SQLite bus, a connector to the fake, and a streamer to load what it lands."""

    def __init__(self, settings: Settings, fake: FakeSmaregi, **config: Any) -> None:
        self.settings, self.fake = settings, fake
        self.lake: Lake = open_lake(settings.lake_root)
        self.bus = open_bus(settings)
        self.now = NOW
        self.sleeps: list[float] = []
        self.connector = self.connect(**config)

    def connect(self, **config: Any) -> SmaregiConnector:
        options = {"start": BASE - timedelta(hours=1), **config}
        cfg = SmaregiConfig(
            TENANT, self.fake.contract, self.fake.client_id,
            options.pop("client_secret", self.fake.client_secret),
            api_url=self.fake.url, id_url=self.fake.url, **options,
        )  # fmt: skip
        return SmaregiConnector(
            cfg, self.lake, LandingZone(self.lake, self.bus), sleep=self.sleeps.append,
            now=lambda: self.now,
        )  # fmt: skip

    def load(self) -> list[dict[str, Any]]:
        streamer = Streamer(self.settings, self.lake, self.bus, directory(), fetch_timeout=0.05)
        try:
            streamer.run_until_idle(0.2)
        finally:
            streamer.close()
        return read_table(self.lake, "raw_pos_transactions").to_pylist()

    def close(self) -> None:
        self.connector.close()
        self.bus.close()


@pytest.fixture
def rig(settings: Settings, fake: FakeSmaregi) -> Iterator[Rig]:
    made = Rig(settings, fake)
    yield made
    made.close()


def test_incremental_pull_windows_pages_retries_and_cursor(rig: Rig, fake: FakeSmaregi) -> None:
    fake.fail = [(503, {}), (429, {"Retry-After": "0"})]
    report = rig.connector.pull()
    # start BASE − 1 h to NOW = 45 days: a 31-day window (sales 0..185: 4 h·185 + 1 min
    # ≤ 743 h) in pages of 100 and 86, then 14 days + 1 h (sales 186..249) in one page.
    assert (report.windows, report.pages, report.transactions, report.landed) == (2, 3, 250, 3)
    assert report.retries == 2 and rig.sleeps == [0.5, 0.0]  # back-off, then Retry-After
    assert all(q["limit"] == "100" and q["with_details"] == "all" for q in fake.queries)
    assert [q["page"] for q in fake.queries] == ["1", "2", "1"]  # answered (after 503, 429)
    assert report.cursor == NOW and rig.connector.cursor() == NOW
    assert fake.token_requests == 1  # one token for the whole pull

    loaded = rig.load()
    assert len(loaded) == 250
    assert sum(tx["total_tax"] for tx in loaded) == Decimal(25_000)  # 250 × 100
    assert sum(tx["total_incl_tax"] for tx in loaded) == Decimal(275_000)

    again = rig.connector.pull()  # nothing updated since the cursor: no request at all
    assert (again.windows, again.transactions) == (0, 0)
    # A day later transaction 1007 is cancelled in Smaregi: its update time moves.
    rig.now = NOW + timedelta(days=1)
    fake.transactions[7] |= {
        "cancelDivision": "1",
        "updDateTime": (NOW + timedelta(hours=1)).isoformat(),
    }
    later = rig.connector.pull()
    assert (later.windows, later.transactions, later.landed) == (1, 1, 1)
    versions = [tx for tx in rig.load() if tx["transaction_id"] == "1007"]
    assert sorted(tx["kind"] for tx in versions) == ["sale", "void"]  # the latest one wins
    assert max(versions, key=lambda tx: tx["received_at"])["kind"] == "void"


def test_backfill_by_sale_time_leaves_the_cursor(rig: Rig, fake: FakeSmaregi) -> None:
    report = rig.connector.backfill(BASE + timedelta(days=10), BASE + timedelta(days=20))
    # 10 days of 6 sales a day, both ends inclusive: sales 60..120.
    assert (report.windows, report.transactions) == (1, 61)
    assert all("transaction_date_time-from" in q for q in fake.queries)
    assert rig.connector.cursor() is None
    again = rig.connector.backfill(BASE + timedelta(days=10), BASE + timedelta(days=20))
    assert again.landed == 0  # the same pages again: landed once


def test_an_expired_token_is_fetched_again(rig: Rig, fake: FakeSmaregi) -> None:
    rig.connector.backfill(BASE, BASE + timedelta(days=1))
    fake.revoke()
    report = rig.connector.backfill(BASE + timedelta(days=1), BASE + timedelta(days=2))
    assert report.transactions == 7 and fake.token_requests == 2


def test_refusals_name_the_answer(settings: Settings, fake: FakeSmaregi) -> None:
    bad = Rig(settings, fake, client_secret="wrong")
    with pytest.raises(SmaregiError, match="POST .*/token: 401 .*invalid_client"):
        bad.connector.pull()
    bad.close()
    flaky = Rig(settings, fake, retries=2)
    fake.fail = [(503, {})] * 3
    with pytest.raises(SmaregiError, match="503 .*after 3 attempts"):
        flaky.connector.pull()
    assert flaky.connector.cursor() is None  # nothing landed is skipped: the window is redone
    flaky.close()
    with pytest.raises(ValueError, match="limit must be 1..1000"):
        SmaregiConfig(TENANT, "c", "i", "s", limit=1001)


def test_cli_pull_and_backfill(
    settings: Settings, fake: FakeSmaregi, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["pos", "pull", "smaregi", "--tenant", TENANT])
    assert res.exit_code == 2 and "set SMAREGI_CONTRACT_ID, SMAREGI_CLIENT_ID" in res.output
    for name, value in {
        "SMAREGI_CONTRACT_ID": fake.contract, "SMAREGI_CLIENT_ID": fake.client_id,
        "SMAREGI_CLIENT_SECRET": fake.client_secret, "SMAREGI_API_URL": fake.url,
        "SMAREGI_ID_URL": fake.url,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    res = runner.invoke(
        app,
        ["pos", "pull", "smaregi", "--tenant", TENANT, "--from", "2026-09-01T18:00:00+09:00",
         "--to", "2026-09-02T18:00:00+09:00"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "1 windows, 1 pages, 7 transactions, 1 new objects" in res.output  # 6 a day, inclusive
    res = runner.invoke(app, ["pos", "pull", "vendor_a", "--tenant", TENANT])
    assert res.exit_code == 2 and "no pull connector for 'vendor_a'" in res.output


def test_the_dagster_job_pulls_every_configured_connector(
    settings: Settings, fake: FakeSmaregi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenpo.pipelines import TenpoResource
    from tenpo.pipelines.connectors import pull_connectors_job, pull_connectors_schedule

    assert pull_connectors_schedule().default_status.value == "STOPPED"  # nothing configured
    for name, value in {
        "SMAREGI_TENANT": TENANT, "SMAREGI_CONTRACT_ID": fake.contract,
        "SMAREGI_CLIENT_ID": fake.client_id, "SMAREGI_CLIENT_SECRET": fake.client_secret,
        "SMAREGI_API_URL": fake.url, "SMAREGI_ID_URL": fake.url,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    assert pull_connectors_schedule().default_status.value == "RUNNING"
    recent = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    for t in fake.transactions[:5]:  # updated yesterday: inside a first pull's 31 days
        t["updDateTime"] = recent
    result = pull_connectors_job.execute_in_process(
        resources={"tenpo": TenpoResource.from_settings(settings)}
    )
    assert result.success
    assert result.output_for_node("pull_connectors") == {"smaregi": 5}
    lake = open_lake(settings.lake_root)
    assert lake.exists(f"state/connectors/smaregi/{TENANT}/{fake.contract}.json")
