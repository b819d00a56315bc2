"""pgvector Feature DB against a real PostgreSQL with pgvector (the machine's or pgserver)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tenpo.core.errors import BadInput
from tenpo.features.pgvector_store import PgVectorFeatureStore
from tests import _services
from tests.features.test_faiss_store import near, unit

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pgvector_server() -> str:
    return _services.pgvector_url()


@pytest.fixture
def store(pgvector_server: str) -> Iterator[PgVectorFeatureStore]:
    import uuid

    import sqlalchemy as sa

    name = f"tenpo_fv_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pgvector_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pgvector_server).set(database=name)
    s = PgVectorFeatureStore(url.render_as_string(hide_password=False))
    yield s
    s.close()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_identify_tenants_erase_and_retention(store: PgVectorFeatureStore) -> None:
    a = store.identify("t1", unit(1), NOW - timedelta(days=200))
    assert a.is_new
    same = store.identify("t1", near(unit(1), 5), NOW - timedelta(days=200))
    assert same.person_id == a.person_id and same.distance == pytest.approx(0.2, abs=1e-4)
    b = store.identify("t1", unit(2), NOW)
    assert b.is_new and b.person_id != a.person_id
    other = store.identify("t2", unit(1), NOW)  # same face, other tenant: never matched
    assert other.is_new and other.person_id != a.person_id
    assert [m.person_id for m in store.search("t2", unit(1), k=5)] == [other.person_id]
    assert store.count("t1") == 2 and store.count("t3") == 0

    assert store.expire(NOW) == 1  # a was last seen 200 days ago
    assert store.count("t1") == 1
    back = store.identify("t1", unit(1), NOW)
    assert back.is_new and back.person_id != a.person_id
    assert store.erase("t1", back.person_id) == 1
    assert store.erase("t1", back.person_id) == 0
    assert store.identify("t1", unit(1), NOW).is_new


def test_matches_faiss_nearest_neighbours(store: PgVectorFeatureStore) -> None:
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(60, 128)).astype(np.float32)
    for i, v in enumerate(vecs):
        store.add("t1", f"p{i}", v, NOW)
    q = vecs[17] + 0.01
    got = store.search("t1", q, k=3)
    exact = np.argsort(np.linalg.norm(vecs - q, axis=1))[:3]
    assert [m.person_id for m in got] == [f"p{i}" for i in exact]
    assert got[0].distance == pytest.approx(float(np.linalg.norm(vecs[17] - q)), rel=1e-4)
    with pytest.raises(BadInput, match="shape"):
        store.search("t1", np.zeros(3))
    with pytest.raises(BadInput, match="tenant id"):
        store.add("t1'; drop table x; --", "p", vecs[0], NOW)
