"""The lake on ``s3://`` against a real S3 API server (moto in server mode, over HTTP).

First the lake contract (atomic and conditional puts, listing, deletes) across processes,
then the whole flow — land → stream → materialize → export → read API — on S3, configured
exactly as README's *Datalake on S3* section says.
"""

from __future__ import annotations

import multiprocessing
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.core.settings import Settings
from tenpo.lake import open_lake

pytest.importorskip("s3fs")
pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_s3_block() -> str:
    """The shell block of README's *Datalake on S3* section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Datalake on S3", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README's S3 section has no bash block"
    return match.group(1)


def _race(root: str, key: str, me: int, go: Any, out: Any) -> None:
    go.wait()
    out.put((me, open_lake(root).put_if_absent(key, f"writer {me} ".encode() * 500)))


def test_lake_contract_on_s3(s3_lake_url: str) -> None:
    lake = open_lake(s3_lake_url)
    assert lake.root == s3_lake_url and lake.path("a/b").startswith(s3_lake_url + "/")
    assert lake.list("") == []
    lake.put("tables/t/tenant=t1/date=2026-10-05/p1.parquet", b"one")
    lake.put("tables/t/tenant=t1/date=2026-10-05/p1.parquet", b"uno")  # overwrite
    lake.put("tables/t/tenant=t1/date=2026-10-06/p2.parquet", b"two")
    lake.put("tables/tx/tenant=t1/date=2026-10-05/p3.parquet", b"other table")
    assert lake.get("tables/t/tenant=t1/date=2026-10-05/p1.parquet") == b"uno"
    # Listing: recursive, sorted, a prefix is a folder ("tables/t" is not "tables/tx").
    assert lake.list("tables/t") == [
        "tables/t/tenant=t1/date=2026-10-05/p1.parquet",
        "tables/t/tenant=t1/date=2026-10-06/p2.parquet",
    ]
    assert lake.list("tables/t/") == lake.list("tables/t")
    assert lake.list("nothing/here") == []
    # Another process's client sees a put at once (no cached listing).
    other = open_lake(s3_lake_url)
    lake.put("tables/t/tenant=t2/date=2026-10-05/p4.parquet", b"late")
    assert "tables/t/tenant=t2/date=2026-10-05/p4.parquet" in other.list("tables/t")
    lake.delete("tables/t/tenant=t2/date=2026-10-05/p4.parquet")
    lake.delete("tables/t/tenant=t2/date=2026-10-05/p4.parquet")  # gone already: no error
    assert not other.exists("tables/t/tenant=t2/date=2026-10-05/p4.parquet")
    # Conditional put: If-None-Match on the server, exactly one winner across processes.
    assert lake.put_if_absent("ids/x/tenant=t1/a.json", b"first")
    assert not lake.put_if_absent("ids/x/tenant=t1/a.json", b"second")
    assert lake.get("ids/x/tenant=t1/a.json") == b"first"
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    key = "ids/x/tenant=t1/race.json"
    procs = [ctx.Process(target=_race, args=(s3_lake_url, key, i, go, out)) for i in range(4)]
    for p in procs:
        p.start()
    go.set()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1, results
    assert lake.get(key) == f"writer {winners[0]} ".encode() * 500


def test_readme_s3_section_runs_the_demo_on_s3(
    settings: Settings, s3_lake_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = readme_s3_block()
    exported = {
        word.split("=", 1)[0]
        for line in block.splitlines()
        if line.startswith("export ")
        for word in shlex.split(line, comments=True)[1:]
    }
    # The variables README tells operators to set are the ones this test's client uses.
    assert exported == {
        "TENPO_LAKE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_S3",
    }
    assert "uv sync --extra s3" in block
    demo_line = next(line for line in block.splitlines() if line.startswith("tenpo demo"))
    args = shlex.split(demo_line, comments=True)[1:]
    assert args[:2] == ["demo", "--no-serve"] and args[2] == "--lake-url"
    monkeypatch.setenv("TENPO_LAKE_URL", s3_lake_url)
    demo_url = s3_lake_url + "-demo"
    result = CliRunner().invoke(
        app, ["demo", "--no-serve", "--lake-url", demo_url, "--stores", "2", "--days", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "ground truth" in result.output
    # Everything went to S3: nothing of the lake on local disk.
    assert not (settings.data_dir / "demo" / "lake").exists()
    lake = open_lake(demo_url)
    zones = {key.split("/", 1)[0] for key in lake.list("")}
    assert {"landing", "ids", "tables"} <= zones
    marts = {key.split("/")[1] for key in lake.list("tables") if key.split("/")[1][:5] == "mart_"}
    assert {"mart_store_daily", "mart_store_hourly", "mart_store_visits"} <= marts
    # Landing again is idempotent on S3: the claim (conditional put) names the first object.
    landed = [k for k in lake.list("landing/pos_vendor_a") if k.endswith(".csv")]
    assert landed
    from tenpo.bus.memory import MemoryBus
    from tenpo.lake import LandingZone

    zone = LandingZone(lake, MemoryBus())
    first = landed[0]
    tenant = first.split("tenant=", 1)[1].split("/", 1)[0]
    again = zone.land("pos_vendor_a", tenant, lake.get(first), "csv")
    assert not again.created and again.event.key == first
    # The datamart got the marts (SQLite here), and a re-read through DuckDB on S3 agrees.
    import sqlite3

    con = sqlite3.connect(settings.data_dir / "demo" / "datamart.db")
    try:
        (n,) = con.execute("SELECT count(*) FROM mart_store_daily").fetchone()
    finally:
        con.close()
    assert n == 4  # 2 stores × 2 days
    from tenpo.warehouse import open_warehouse

    demo_settings = settings.model_copy(update={"lake_url": demo_url})
    with open_warehouse(demo_settings) as wh:
        assert wh.to_arrow(wh.table("mart_store_daily")).num_rows == 4
