"""FAISS Feature DB: identify, persistence, tenants, erase, retention, ANN switch, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tenpo.core.errors import BadInput
from tenpo.features.base import DIM
from tenpo.features.faiss_store import FaissFeatureStore

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)


def unit(seed: int) -> np.ndarray:
    """A random vector at the scale of dlib descriptors (norm ~1)."""
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, seed: int, dist: float = 0.2) -> np.ndarray:
    noise = unit(seed + 10_000)
    return (v + dist * noise).astype(np.float32)


def test_identify_same_and_different(tmp_path: Path) -> None:
    store = FaissFeatureStore(tmp_path)
    a = store.identify("t1", unit(1), NOW)
    assert a.is_new and a.distance is None
    again = store.identify("t1", near(unit(1), 5), NOW)
    assert again.person_id == a.person_id and not again.is_new
    assert again.distance == pytest.approx(0.2, abs=1e-4)
    other = store.identify("t1", unit(2), NOW)
    assert other.is_new and other.person_id != a.person_id
    assert other.distance is not None and other.distance > 1.0
    assert store.count("t1") == 2  # matches do not add vectors


def test_threshold_is_configurable(tmp_path: Path) -> None:
    strict = FaissFeatureStore(tmp_path / "s", threshold=0.1)
    first = strict.identify("t1", unit(1), NOW)
    assert strict.identify("t1", near(unit(1), 5), NOW).person_id != first.person_id


def test_no_cross_tenant_matching(tmp_path: Path) -> None:
    store = FaissFeatureStore(tmp_path)
    a = store.identify("tenant-a", unit(1), NOW)
    b = store.identify("tenant-b", unit(1), NOW)  # the very same face
    assert b.is_new and b.person_id != a.person_id
    assert [m.person_id for m in store.search("tenant-b", unit(1), k=5)] == [b.person_id]
    assert store.search("tenant-c", unit(1)) == []


def test_persisted_and_reloaded_without_images(tmp_path: Path) -> None:
    store = FaissFeatureStore(tmp_path)
    pid = store.identify("t1", unit(1), NOW).person_id
    store.close()
    files = sorted(p.name for p in (tmp_path / "tenant=t1").iterdir())
    assert files == ["index.faiss", "meta.json", "vectors.npy"]
    again = FaissFeatureStore(tmp_path)
    assert again.identify("t1", near(unit(1), 3), NOW).person_id == pid
    assert again.tenants() == ["t1"]


def test_erase_then_comes_back_as_new(tmp_path: Path) -> None:
    store = FaissFeatureStore(tmp_path)
    pid = store.identify("t1", unit(1), NOW).person_id
    keep = store.identify("t1", unit(2), NOW).person_id
    assert store.erase("t1", pid) == 1
    assert store.erase("t1", pid) == 0
    reloaded = FaissFeatureStore(tmp_path)
    back = reloaded.identify("t1", unit(1), NOW)
    assert back.is_new and back.person_id != pid
    assert reloaded.identify("t1", unit(2), NOW).person_id == keep


def test_retention_expires_unseen_persons(tmp_path: Path) -> None:
    store = FaissFeatureStore(tmp_path, retention_days=180)
    old = store.identify("t1", unit(1), NOW - timedelta(days=200)).person_id
    seen_again = store.identify("t1", unit(2), NOW - timedelta(days=200)).person_id
    store.identify("t1", unit(2), NOW - timedelta(days=10))  # touches seen_again
    fresh = store.identify("t2", unit(3), NOW).person_id
    assert store.expire(NOW) == 1
    assert {m.person_id for m in store.search("t1", unit(1), k=5)} == {seen_again}
    assert store.search("t2", unit(3))[0].person_id == fresh
    assert old not in {m.person_id for m in FaissFeatureStore(tmp_path).search("t1", unit(1), 5)}


def test_switches_to_ivf_past_the_size_and_still_finds(tmp_path: Path) -> None:
    store = FaissFeatureStore(tmp_path, ann_min_vectors=200, autosave=False)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, DIM)).astype(np.float32)
    store.add_many("t1", [f"p{i}" for i in range(150)], vecs[:150], NOW)
    assert store.is_exact("t1")
    store.add_many("t1", [f"p{i}" for i in range(150, 300)], vecs[150:], NOW)
    assert not store.is_exact("t1")
    hits = sum(store.search("t1", vecs[i])[0].person_id == f"p{i}" for i in range(0, 300, 7))
    assert hits == len(range(0, 300, 7))
    store.save()
    assert not FaissFeatureStore(tmp_path, ann_min_vectors=200).is_exact("t1")


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.zeros(64), r"shape \(128,\)"),
        (np.full(DIM, np.nan), "NaN"),
        ([[0.0] * DIM], r"shape \(128,\)"),
    ],
)
def test_bad_vectors_are_refused(tmp_path: Path, vector: object, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        FaissFeatureStore(tmp_path).identify("t1", vector, NOW)


def test_bad_settings_and_tenant_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="tenant id"):
        FaissFeatureStore(tmp_path).identify("../etc", unit(1), NOW)
    with pytest.raises(BadInput, match="threshold"):
        FaissFeatureStore(tmp_path, threshold=0)
    with pytest.raises(BadInput, match="retention"):
        FaissFeatureStore(tmp_path, retention_days=0)
    with pytest.raises(BadInput, match="ann_min_vectors"):
        FaissFeatureStore(tmp_path, ann_min_vectors=0)
