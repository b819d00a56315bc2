"""Gateway fixtures: a real control plane (SQLite), a tmp lake, the SQLite bus, a client."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from tenpo.bus import OBJECT_REGISTERED, EventBus, open_bus
from tenpo.control import ControlPlane
from tenpo.core.ids import utcnow
from tenpo.core.settings import Settings
from tenpo.gateway import create_app
from tenpo.lake import Lake, open_lake

SAMPLES = Path(__file__).parents[1] / "data"  # the FORMATS.md samples, in the checkout
DATA = Path(__file__).parent / "data"


@dataclass
class Keys:
    """Tokens of the test tenants' API keys."""

    acme: str  # pos:write, iot:write, video:write
    acme_read: str  # read only
    acme_revoked: str
    beta: str  # every write scope, tenant beta


@dataclass
class Gateway:
    """A running gateway app under test and what it writes to."""

    client: TestClient
    lake: Lake
    bus: EventBus
    control: ControlPlane
    keys: Keys
    settings: Settings

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.keys.acme}"}

    def landed(self, source: str | None = None) -> list[str]:
        return self.lake.list(f"landing/{source}/" if source else "landing/")

    def events(self) -> list[dict[str, object]]:
        deliveries = self.bus.fetch(OBJECT_REGISTERED, "test", max_events=1000, timeout=0.2)
        for d in deliveries:
            self.bus.ack(d)
        return [d.payload for d in deliveries]


def today_tokyo() -> date:
    """The landing date the gateway uses (settings.default_timezone)."""
    return utcnow().astimezone(ZoneInfo("Asia/Tokyo")).date()


def seed_control(control: ControlPlane) -> Keys:
    """Two tenants, a store, a people counter and a camera each, and the keys the tests use."""
    control.create_tenant("acme", "Acme Retail")
    control.create_tenant("beta", "Beta Mart")
    acme_store = control.create_store("acme", "T01", "本町店")
    beta_store = control.create_store("beta", "B01", "駅前店")
    control.create_device(
        "acme", "pc-001", acme_store.store_id, "people_counter", lines=["entrance"]
    )
    control.create_device(
        "beta", "pc-900", beta_store.store_id, "people_counter", lines=["entrance"]
    )
    control.create_device("acme", "cam-1", acme_store.store_id, "rgb_camera")
    control.create_device("beta", "cam-900", beta_store.store_id, "rgb_camera")
    writes = ["pos:write", "iot:write", "video:write"]
    _, acme = control.create_api_key("acme", "writer", writes)
    _, acme_read = control.create_api_key("acme", "reader", ["read"])
    revoked_info, acme_revoked = control.create_api_key("acme", "old", writes)
    control.revoke_api_key("acme", revoked_info.key_id)
    _, beta = control.create_api_key("beta", "writer", writes)
    return Keys(acme=acme, acme_read=acme_read, acme_revoked=acme_revoked, beta=beta)


@pytest.fixture(scope="session")
def seeded_control_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Keys]:
    """A migrated, seeded control database, made once; tests get a copy (migrations are slow)."""
    path = tmp_path_factory.mktemp("control") / "control.db"
    plane = ControlPlane.open(f"sqlite:///{path}")
    keys = seed_control(plane)
    plane.dispose()
    return path, keys


@pytest.fixture
def control(settings: Settings, seeded_control_db: tuple[Path, Keys]) -> Iterator[ControlPlane]:
    """A real control plane on a private copy of the seeded SQLite database."""
    shutil.copyfile(seeded_control_db[0], settings.data_dir / "control.db")
    plane = ControlPlane.open(settings.control_db_url)
    yield plane
    plane.dispose()


@pytest.fixture
def gateway(
    settings: Settings, control: ControlPlane, seeded_control_db: tuple[Path, Keys]
) -> Iterator[Gateway]:
    """The gateway app (64 KiB body limit) in a TestClient, over a tmp lake and bus."""
    settings = settings.model_copy(
        update={"max_body_bytes": 64 * 1024, "pos_max_body_bytes": 96 * 1024}
    )
    keys = seeded_control_db[1]
    lake = open_lake(settings.lake_root)
    bus = open_bus(settings)  # the embedded SQLite outbox
    app = create_app(settings, control=control, lake=lake, bus=bus)
    with TestClient(app) as client:
        yield Gateway(client, lake, bus, control, keys, settings)
    bus.close()
