"""The dashboard in Debian's headless Chromium (Playwright): log in, overview, store page,
numbers equal to the API's, language switch, comparison, and another tenant locked out.

Screenshots go to ``test-artifacts/`` (git-ignored) at the repository root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tenpo.api import create_app
from tenpo.datamart import dispose_engines, get_engine
from tenpo.gateway import serve_in_thread
from tests.api.world import PASSWORD, USERS, World, build

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("TENPO_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
RANGE = {"from": "2026-10-05", "to": "2026-10-11"}

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"{CHROMIUM} is missing and could not be installed (make chromium: apt-get install "
        "chromium); the dashboard browser tests need it",
        allow_module_level=True,
    )

from playwright.sync_api import Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    world = build(tmp_path_factory.mktemp("browser"))
    app = create_app(
        world.settings, engine=get_engine(world.settings.datamart_db_url), control=world.control
    )
    server, thread = serve_in_thread(app, "127.0.0.1", 0)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", world
    server.should_exit = True
    thread.join(timeout=10)
    world.control.dispose()
    dispose_engines()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _page(browser: object, base: str) -> Page:
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=base, viewport={"width": 1280, "height": 900}, locale="en-US"
    )
    page: Page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def _login(page: Page, who: str) -> None:
    page.goto("/app/")
    page.fill("#email", USERS[who])
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")


def _api(base: str, world: World, path: str, **params: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {world.t1_key}"}
    resp = httpx.get(base + path, params=params, headers=headers, timeout=10)
    resp.raise_for_status()
    body: dict[str, object] = resp.json()
    return body


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard_{name}.png"), full_page=True)


def test_login_overview_store_language_compare(served: tuple[str, World], browser: object) -> None:
    base, world = served
    page = _page(browser, base)
    page.goto("/app/")
    page.wait_for_selector("#login-form")
    _shot(page, "login")
    page.fill("#email", USERS["admin"])
    page.fill("#password", "wrong password!")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('Wrong email or password')")

    _login(page, "admin")
    page.wait_for_selector("#stores tbody tr[data-store-id='s1']")
    api_total = _api(base, world, "/v1/kpis", grain="total", **RANGE)
    s1_total = next(s for s in api_total["stores"] if s["store_id"] == "s1")  # type: ignore[attr-defined]
    sales = s1_total["items"][0]["net_sales"]
    cell = page.locator("tr[data-store-id='s1'] td[data-kpi='net_sales']")
    assert cell.get_attribute("data-value") == sales
    assert cell.inner_text() == f"¥{int(Decimal(sales)):,}"  # yen without decimals
    assert page.locator("tr[data-store-id='s1'] [data-flag='gap']").count() == 1
    assert page.locator("tr[data-store-id='s2'] [data-flag='counter']").count() == 1
    assert page.locator("tr[data-store-id='zz-t2-secret']").count() == 0
    # Sorted by net sales, highest first; one click on the header sorts ascending.
    assert page.locator("#stores tbody tr").first.get_attribute("data-store-id") == "s1"
    page.click("th[data-key='net_sales']")
    first = page.locator("#stores tbody tr").first.get_attribute("data-store-id")
    assert first == "s3"  # no sales sorts lowest
    page.fill("#filter", "002")
    assert page.locator("#stores tbody tr").count() == 1
    page.fill("#filter", "")
    _shot(page, "overview_en")

    page.click("a[href='#/store/s1']")
    page.wait_for_selector("#store-title")
    page.wait_for_function("window.tenpo.charts['daily:net_sales'] !== undefined")
    daily = _api(base, world, "/v1/stores/s1/kpis", grain="day", **RANGE)
    expected = [float(r["net_sales"]) for r in daily["items"]]  # type: ignore[attr-defined]
    shown = page.evaluate("window.tenpo.charts['daily:net_sales'].data.datasets[0].data")
    assert shown == expected
    hourly = page.evaluate("window.tenpo.charts['hourly:net_sales'].data.datasets[0].data")
    assert hourly[10:13] == [6000, 12000, 18000]  # six days × 1000/2000/3000 yen
    card = page.locator(".card [data-kpi='net_sales']")
    assert card.get_attribute("data-value") == sales
    tree = _api(base, world, "/v1/stores/s1/sales-tree", **RANGE)
    passersby = tree["current"]["passersby"]  # type: ignore[index]
    assert page.locator("[data-tree='passersby'] .value").inner_text() == f"{passersby:,}"
    assert "Oct 8" in page.locator("#quality").inner_text()  # the data gap
    _shot(page, "store_en")

    page.click("#lang")
    page.wait_for_selector("h2:has-text('売上ツリー')")
    assert page.locator("html").get_attribute("lang") == "ja"
    ja_sales = page.locator(".card [data-kpi='net_sales']").inner_text()
    assert ja_sales.endswith(f"{int(Decimal(sales)):,}") and ja_sales[0] in "¥￥"
    assert "10月8日" in page.locator("#quality").inner_text()
    _shot(page, "store_ja")

    page.goto("/app/#/compare?ids=s1,s2&metric=net_sales")
    page.wait_for_selector("#compare-table tr[data-store-id='s2']")
    datasets = page.evaluate("window.tenpo.charts['compare'].data.datasets.length")
    assert datasets == 2
    _shot(page, "compare_ja")
    page.click("#lang")
    page.wait_for_selector("h1:has-text('Compare stores')")
    assert page.errors == []  # type: ignore[attr-defined]
    page.click("#logout")
    page.wait_for_selector("#login-form")


def test_other_tenant_cannot_open_the_store(served: tuple[str, World], browser: object) -> None:
    base, _ = served
    page = _page(browser, base)
    _login(page, "other")
    page.wait_for_selector("#stores tbody tr[data-store-id='zz-t2-secret']")
    assert page.locator("tr[data-store-id='s1']").count() == 0
    page.goto("/app/#/store/s1")
    page.wait_for_selector("#not-found")
    assert "78,000" not in page.content()
    assert page.locator("#store-title").count() == 0
    _shot(page, "other_tenant_store_s1")
    # A store manager of s2 is refused s1 the same way.
    manager = _page(browser, base)
    _login(manager, "manager")
    manager.wait_for_selector("#stores tbody tr[data-store-id='s2']")
    manager.goto("/app/#/store/s1")
    manager.wait_for_selector("#not-found")


def test_phone_japanese_empty_range_and_reasons(served: tuple[str, World], browser: object) -> None:
    base, _ = served
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=base, viewport={"width": 390, "height": 844}, locale="ja-JP"
    )
    # An empty range: no store has data in 2025 (sessionStorage is read at start).
    context.add_init_script(
        "localStorage.setItem('tenpo.lang', 'ja');"
        "sessionStorage.setItem('tenpo.range',"
        " JSON.stringify({from: '2025-01-06', to: '2025-01-12'}));"
    )
    page: Page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/app/")
    page.wait_for_selector("#login-form")
    # The top bar (navigation, dates, log out) stays hidden on the login page.
    assert not page.locator("#topbar").is_visible()
    assert not page.locator("#logout").is_visible()
    _login(page, "admin")
    page.wait_for_selector("#stores tbody tr[data-store-id='s1']")
    assert page.locator("#topbar").is_visible()
    # Empty range: "—", never ¥0, with the reason as a tooltip.
    chain = page.locator("#chain-sales")
    assert chain.inner_text() == "—" and chain.get_attribute("data-value") == ""
    assert chain.get_attribute("title")
    cell = page.locator("tr[data-store-id='s1'] td[data-kpi='net_sales']")
    assert cell.inner_text() == "—"
    assert cell.get_attribute("title") == "期間内にこの店舗のデータがありません"
    assert "¥0" not in page.locator("#view").inner_text()
    # Industry names in Japanese.
    options = page.locator("#industry option").all_inner_texts()
    assert "アパレル" in options and "apparel" not in options
    # Nothing wider than the phone: the table scrolls inside its box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    wrap = page.locator(".table-wrap").first
    assert page.evaluate("(el) => getComputedStyle(el).overflowX", wrap.element_handle()) == "auto"
    _shot(page, "phone_ja_empty")
    assert errors == []
    context.close()


def test_initiatives_page_budget_and_language(served: tuple[str, World], browser: object) -> None:
    """An initiative with its measured effect (list, chart with the control band, pre-period
    fit), in English and Japanese; the store page's budget; a manager of another store sees
    no initiative."""
    import json
    from datetime import date

    from tenpo.datamart.initiatives import export_initiative_effects
    from tenpo.ml.initiatives import EFFECT_COLUMNS

    base, world = served
    world.control.ensure_initiative(
        "t1",
        initiative_id="pop-1",
        name="店頭POP",
        kind="promotion",
        kpi="net_sales",
        store_ids=["s1"],
        start=date(2026, 10, 9),
        end=date(2026, 10, 11),
    )
    world.control.put_budgets("t1", [{"store_id": "s1", "date": "2026-10-05", "net_sales": "1000"}])
    series = [
        {
            "date": f"2026-10-{d:02d}",
            "period": "pre" if d < 9 else "post",
            "treated": 1.0 + d / 100,
            "control": 1.0,
            "control_low": 0.95,
            "control_high": 1.05,
        }
        for d in range(5, 12)
    ]
    row = dict.fromkeys(EFFECT_COLUMNS)
    row |= {
        "tenant_id": "t1",
        "initiative_id": "pop-1",
        "kpi": "net_sales",
        "business_date": date(2026, 10, 11),
        "status": "ok",
        "effect": 0.05,
        "ci_low": 0.01,
        "ci_high": 0.09,
        "confidence": 0.9,
        "significant": True,
        "pre_start": date(2026, 10, 5),
        "pre_end": date(2026, 10, 8),
        "post_start": date(2026, 10, 9),
        "post_end": date(2026, 10, 11),
        "pre_days": 4,
        "post_days": 3,
        "treated": json.dumps(["s1"]),
        "controls": json.dumps(["s3"]),
        "candidates": 1,
        "control_basis": "tenant",
        "pre_rmse": 0.02,
        "pre_corr": 0.9,
        "pre_slope_per_week": 0.001,
        "pre_slope_p": 0.8,
        "parallel_trends": True,
        "series": json.dumps(series),
    }
    export_initiative_effects(get_engine(world.settings.datamart_db_url), ["t1"], [row])

    page = _page(browser, base)
    _login(page, "admin")
    page.wait_for_selector("#stores")
    page.click("a[href='#/initiatives']")
    page.wait_for_selector("#initiatives tr[data-initiative='pop-1']")
    assert (
        page.locator("tr[data-initiative='pop-1'] td[data-effect]").get_attribute("data-effect")
        == "0.05"
    )
    assert "+5%" in page.locator("tr[data-initiative='pop-1']").inner_text()
    page.click("a[href='#/initiative/pop-1']")
    page.wait_for_function("window.tenpo.charts['effect'] !== undefined")
    sets = page.evaluate("window.tenpo.charts['effect'].data.datasets.map(d => d.data)")
    assert sets[0] == [1.05] * 7 and sets[1] == [0.95] * 7  # the controls' band
    assert sets[3] == [p["treated"] for p in series]
    assert page.locator("#fit [data-parallel='true']").count() == 1
    assert "s3" in page.locator("#fit").inner_text()
    _shot(page, "initiative_en")
    page.click("#lang")
    page.wait_for_selector("#initiative-title")
    page.wait_for_function("document.querySelector('#effects').innerText.includes('純売上')")
    assert "実施店舗" in page.locator("#effects").inner_text()
    _shot(page, "initiative_ja")
    page.click("#lang")
    page.goto(f"{base}/app/#/store/s1")
    page.wait_for_selector("#budget [data-budget]")
    assert page.locator("#budget [data-budget]").get_attribute("data-budget") == "1000.00"
    assert not page.errors  # type: ignore[attr-defined]

    manager = _page(browser, base)
    _login(manager, "manager")
    manager.wait_for_selector("#stores")
    manager.goto(f"{base}/app/#/initiatives")
    manager.wait_for_selector("#initiatives-none")


def test_forecast_chart_and_alerts_with_acknowledge(
    served: tuple[str, World], browser: object
) -> None:
    """The store page's forecast chart (median and bands as the API serves them) and the
    alerts page, where acknowledging an alert sticks; a manager of another store sees none."""
    from datetime import UTC, date, datetime, timedelta

    import pyarrow as pa

    from tenpo.alerts import Alert, alert_id
    from tenpo.datamart.alerts import record_alerts
    from tenpo.datamart.forecast import export_forecasts
    from tenpo.ml.forecast import MART_STORE_FORECAST

    base, world = served
    as_of = date(2026, 10, 11)
    rows = [
        {"tenant_id": "t1", "store_id": "s1", "kpi": "visitors", "grain": "day",
         "business_date": as_of + timedelta(days=k), "hour": -1, "utc_offset_s": 0,
         "as_of": as_of, "mean": 100.0 + k, "lo_80": 90.0, "hi_80": 120.0, "lo_95": 80.0,
         "hi_95": 130.0}
        for k in (1, 2, 3)
    ]  # fmt: skip
    export_forecasts(world.settings, pa.Table.from_pylist(rows, MART_STORE_FORECAST))
    engine = get_engine(world.settings.datamart_db_url)
    aid = alert_id("t1", "traffic", "s1", "visitors", as_of)
    message = "visitors drop: 40 outside the 95 % forecast interval 80-130"
    alert = Alert(
        aid, "t1", "traffic", "kpi_outside_forecast", "s1", "visitors", as_of, message, 40.0
    )
    record_alerts(engine, [alert], datetime(2026, 10, 11, 22, tzinfo=UTC))

    page = _page(browser, base)
    _login(page, "admin")
    page.wait_for_selector("#stores")
    page.goto(f"{base}/app/#/store/s1")
    page.wait_for_function("window.tenpo.charts['forecast'] !== undefined")
    sets = page.evaluate("window.tenpo.charts['forecast'].data.datasets.map(d => d.data)")
    assert sets[4] == [101, 102, 103] and sets[0] == [130] * 3 and sets[3] == [80] * 3
    page.click("a[href='#/alerts']")
    page.wait_for_selector(f"#alerts tr[data-alert='{aid}']")
    assert "visitors drop" in page.locator(f"tr[data-alert='{aid}']").inner_text()
    page.click(f"button[data-ack='{aid}']")
    page.wait_for_selector(f"tr[data-alert='{aid}'] .muted")
    _shot(page, "alerts_en")
    acked = _api(base, world, "/v1/alerts")["items"]
    assert acked[0]["acknowledged_at"] is not None  # type: ignore[index]
    assert not page.errors  # type: ignore[attr-defined]

    manager = _page(browser, base)
    _login(manager, "manager")
    manager.wait_for_selector("#stores")
    manager.goto(f"{base}/app/#/alerts")
    manager.wait_for_selector("#alerts-none")


def test_store_page_staffing_upload_shows_load_curve_and_row_errors(
    served: tuple[str, World], browser: object
) -> None:
    """A rota CSV uploaded on the store page: s1 has 10 visitors and 2 receipts at 10-12:00
    on 2026-10-05..11 but 10-08, so 2 staff give 18 staffed hours at 5 visitors per staff
    hour and one band converting 20 %; a bad file lists its bad rows."""
    from datetime import date, timedelta

    base, world = served
    days = [date(2026, 10, 5) + timedelta(days=i) for i in range(7)]
    rota = "store_id,date,hour,staff\n" + "".join(
        f"s1,{d.isoformat()},{h},2\n" for d in days for h in (10, 11, 12)
    )
    expected = httpx.post(
        base + "/v1/staffing",
        content=rota,
        headers={"Authorization": f"Bearer {world.t1_key}", "Content-Type": "text/csv"},
        timeout=10,
    ).json()
    page = _page(browser, base)
    _login(page, "admin")
    page.wait_for_selector("#stores")
    page.goto(f"{base}/app/#/store/s1")
    page.wait_for_selector("#staffing-file")
    page.set_input_files(
        "#staffing-file", {"name": "rota.csv", "mimeType": "text/csv", "buffer": rota.encode()}
    )
    page.wait_for_selector("#staffing")
    assert page.get_attribute("[data-vpsh]", "data-vpsh") == "5"
    assert page.get_attribute("[data-extra]", "data-extra") == "0"
    assert page.locator("#staffing-curve tbody tr").count() == 1
    assert "20" in page.locator("#staffing-curve tbody tr").inner_text()
    hours = len(expected["recommendation"])
    assert page.get_attribute("#staffing-rec", "data-hours") == str(hours)
    assert page.locator("#staffing-rec tbody tr").count() == min(hours, 48)
    _shot(page, "staffing_en")
    bad = "store_id,date,hour,staff\ns1,2026-10-05,10,2\ns1,2026-10-05,25,2\n"
    page.set_input_files(
        "#staffing-file", {"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}
    )
    page.wait_for_selector("#staffing-errors li[data-row='2']")
    assert "hour" in page.locator("#staffing-errors li[data-row='2']").inner_text()
    assert not page.errors  # type: ignore[attr-defined]
