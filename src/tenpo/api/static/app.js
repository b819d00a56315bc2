// tenpo dashboard: plain JS over the read API (session cookie), charts by Chart.js (vendored).
"use strict";

const I18N = {
  en: {
    "nav.overview": "Overview", "nav.compare": "Compare", "nav.logout": "Log out",
    "range.from": "From", "range.to": "To", "range.apply": "Apply", "range.custom": "Custom",
    "range.last7": "Last 7 days", "range.last14": "Last 14 days", "range.last28": "Last 28 days",
    "login.title": "Sign in to tenpo", "login.email": "Email", "login.password": "Password",
    "login.submit": "Sign in", "login.failed": "Wrong email or password.",
    "overview.title": "Chain overview", "overview.filter": "Filter stores…",
    "overview.all_industries": "All industries", "overview.stores": "{n} stores",
    "store": "Store", "net_sales": "Net sales", "transactions": "Transactions",
    "visitors": "Visitors", "passersby": "Passers-by", "conversion_rate": "Conversion",
    "capture_rate": "Capture rate", "atv": "ATV", "upt": "UPT", "sales_per_visitor": "Sales/visitor",
    "trend": "Daily sales", "flags": "Flags", "net_sales_per_day": "Net sales per day",
    "flag.gap": "data gap", "flag.below": "below target", "flag.pos": "no POS", "flag.counter": "no counter",
    "store.daily": "Daily", "store.hourly": "By hour of day (sum over the range)",
    "store.no_hourly": "Hourly data is not available in this datamart.",
    "store.video": "Visitors by PersonID (camera)", "store.video_help": "Per day only: a person who comes back on another day counts once on each day, so the days are not added up.",
    "unique_visitors": "Unique visitors", "repeat_visitors": "Repeat visitors", "repeat_rate": "Repeat rate",
    "dwell_time_median_s": "Dwell (median)", "dwell_time_mean_s": "Dwell (mean)", "open_visits": "Visits without exit",
    "min": "{n} min", "date": "Date",
    "store.tree": "Sales tree", "store.tree_prev": "previous {from} – {to}",
    "store.compare_title": "Actual vs target vs peers vs benchmark",
    "store.actual": "Actual", "store.target": "Target", "store.peers": "Cluster peers",
    "store.benchmark": "Industry benchmark", "store.quality": "Data quality",
    "store.quality_ok": "Every day in the range has POS and people-counter data.",
    "store.missing_dates": "No data on: {dates}", "store.no_pos_days": "Days without POS data: {dates}",
    "store.no_counter_days": "Days without people-counter data: {dates}",
    "store.not_found": "Store not found, or not visible to you.",
    "compare.title": "Compare stores", "compare.metric": "Metric", "compare.pick": "Pick stores to compare.",
    "na": "—", "loading": "Loading…", "error": "Could not load: {msg}",
    "chain.total": "Chain total",
    "industry.apparel": "Apparel", "industry.drugstore": "Drugstore",
    "industry.supermarket": "Supermarket", "industry.cafe": "Café", "industry.food": "Food",
    "why.no_data": "No data for this store in the range",
    "why.no_pos": "No POS data in the range", "why.no_counter": "No people-counter data in the range",
    "why.zero": "Not defined: its denominator is zero",
    "why.no_target": "No target yet (the ML assets have not run for this store)",
    "why.hidden_peers": "Hidden: fewer than 5 peer stores, not all of them yours to read",
    "why.no_bench": "No published benchmark (too few stores or tenants in the industry)",
    "nav.initiatives": "Initiatives", "nav.alerts": "Alerts",
    "st.title": "Staffing", "st.help": "Upload a rota CSV (store_id,date,hour,staff) of past weeks: visitors per staff hour, where conversion drops, and the staff the forecast hours need.",
    "st.vpsh": "Visitors per staff hour", "st.target": "Target load (visitors per staff hour)",
    "st.strained": "Strained hours", "st.extra": "Expected extra receipts / week",
    "st.curve": "Conversion by visitors per staff hour", "st.load": "Visitors per staff hour",
    "st.hours": "Hours", "st.rec": "Recommended staff (forecast hours)", "st.date": "Date", "st.hour": "Hour",
    "st.visitors": "Forecast visitors", "st.staff": "Staff", "st.errors": "The file was refused:",
    "st.more": "first {n} of {total} hours",
    "fc.title": "Forecast: {kpi}, next 90 days", "fc.none": "No forecast yet (tenpo jobs forecast).",
    "fc.median": "Forecast", "fc.band80": "80 % interval", "fc.band95": "95 % interval",
    "al.title": "Alerts", "al.none": "No alerts.", "al.when": "Date", "al.store": "Store",
    "al.kind": "Rule", "al.message": "What", "al.ack": "Acknowledge", "al.acked": "Acknowledged",
    "ini.title": "Initiatives", "ini.none": "No initiatives registered (POST /v1/initiatives).",
    "ini.name": "Initiative", "ini.kind": "Kind", "ini.kpi": "Aims at", "ini.stores": "Stores",
    "ini.period": "Period", "ini.effect": "Effect", "ini.ci": "90 % interval",
    "ini.not_measured": "not measured yet", "ini.status.no_controls": "no control stores",
    "ini.status.too_few_pre_days": "too few days before", "ini.status.too_few_post_days": "too few days yet",
    "ini.status.not_started": "not started",
    "ini.chart": "{kpi}: treated stores vs control stores (1.00 = pre-period level)",
    "ini.treated": "Treated", "ini.control": "Controls", "ini.band": "Controls P10–P90",
    "ini.fit": "Pre-period fit", "ini.controls": "Control stores", "ini.rmse": "Daily gap left (RMSE)",
    "ini.corr": "Correlation", "ini.slope": "Drift per week (p)", "ini.parallel": "Parallel trends",
    "ini.yes": "yes", "ini.no": "no — judge the controls with care", "ini.hidden": "+{n} not yours to read",
    "ini.as_of": "Measured up to {date}", "ini.significant": "significant",
    "store.primary": "primary lever", "store.peer_stores": "Cluster peers: {list}",
    "store.budget": "Budget vs actual", "store.budget_total": "Budget", "store.actual_total": "Actual (days with a budget)",
    "store.achievement": "Achievement", "store.no_budget": "No budget uploaded for this range (POST /v1/budgets).",
  },
  ja: {
    "nav.overview": "全店概要", "nav.compare": "店舗比較", "nav.logout": "ログアウト",
    "range.from": "開始", "range.to": "終了", "range.apply": "適用", "range.custom": "期間指定",
    "range.last7": "直近7日", "range.last14": "直近14日", "range.last28": "直近28日",
    "login.title": "tenpo にログイン", "login.email": "メールアドレス", "login.password": "パスワード",
    "login.submit": "ログイン", "login.failed": "メールアドレスまたはパスワードが違います。",
    "overview.title": "全店概要", "overview.filter": "店舗を絞り込み…",
    "overview.all_industries": "全業種", "overview.stores": "{n} 店舗",
    "store": "店舗", "net_sales": "純売上", "transactions": "客数(取引)",
    "visitors": "来店客数", "passersby": "通行量", "conversion_rate": "購買率",
    "capture_rate": "入店率", "atv": "客単価", "upt": "買上点数", "sales_per_visitor": "来店客あたり売上",
    "trend": "日別売上", "flags": "フラグ", "net_sales_per_day": "1日あたり純売上",
    "flag.gap": "データ欠損", "flag.below": "目標未達", "flag.pos": "POSなし", "flag.counter": "カウンターなし",
    "store.daily": "日別", "store.hourly": "時間帯別（期間合計）",
    "store.no_hourly": "このデータマートには時間別データがありません。",
    "store.video": "PersonID 別来店（カメラ）", "store.video_help": "日別のみ: 別の日に再来店した人は各日に 1 人と数えるため、日を合算しません。",
    "unique_visitors": "ユニーク来店客数", "repeat_visitors": "リピーター数", "repeat_rate": "リピート率",
    "dwell_time_median_s": "滞在時間（中央値）", "dwell_time_mean_s": "滞在時間（平均）", "open_visits": "退店未検出",
    "min": "{n} 分", "date": "日付",
    "store.tree": "売上ツリー", "store.tree_prev": "前期間 {from} – {to}",
    "store.compare_title": "実績・目標・類似店・業界ベンチマーク",
    "store.actual": "実績", "store.target": "目標", "store.peers": "類似店",
    "store.benchmark": "業界ベンチマーク", "store.quality": "データ品質",
    "store.quality_ok": "期間内の全日に POS と人数カウンターのデータがあります。",
    "store.missing_dates": "データなし: {dates}", "store.no_pos_days": "POS データなし: {dates}",
    "store.no_counter_days": "人数カウンターデータなし: {dates}",
    "store.not_found": "店舗が見つからないか、閲覧権限がありません。",
    "compare.title": "店舗比較", "compare.metric": "指標", "compare.pick": "比較する店舗を選んでください。",
    "na": "—", "loading": "読み込み中…", "error": "読み込めませんでした: {msg}",
    "chain.total": "全店合計",
    "industry.apparel": "アパレル", "industry.drugstore": "ドラッグストア",
    "industry.supermarket": "スーパーマーケット", "industry.cafe": "カフェ", "industry.food": "食品",
    "why.no_data": "期間内にこの店舗のデータがありません",
    "why.no_pos": "期間内に POS データがありません", "why.no_counter": "期間内に人数カウンターデータがありません",
    "why.zero": "分母が 0 のため定義できません",
    "why.no_target": "目標はまだありません（この店舗の ML 処理が未実行）",
    "why.hidden_peers": "非表示: 類似店が 5 店未満で、閲覧できない店舗を含みます",
    "why.no_bench": "公開されたベンチマークがありません（業界の店舗数・企業数が不足）",
    "nav.initiatives": "施策", "nav.alerts": "アラート",
    "st.title": "人員配置", "st.help": "過去数週間のシフト CSV（store_id,date,hour,staff）をアップロード: 人時あたり来店客数、転換率が落ちる負荷、予測時間帯に必要な人数を表示します。",
    "st.vpsh": "人時あたり来店客数", "st.target": "目標負荷（人時あたり来店客数）",
    "st.strained": "人手不足の時間帯", "st.extra": "見込み追加レシート数 / 週",
    "st.curve": "人時あたり来店客数別の転換率", "st.load": "人時あたり来店客数",
    "st.hours": "時間数", "st.rec": "推奨人数（予測時間帯）", "st.date": "日付", "st.hour": "時",
    "st.visitors": "予測来店客数", "st.staff": "人数", "st.errors": "ファイルは受け付けられませんでした:",
    "st.more": "{total} 時間中 最初の {n} 時間",
    "fc.title": "予測: {kpi}（今後 90 日）", "fc.none": "予測はまだありません（tenpo jobs forecast）。",
    "fc.median": "予測", "fc.band80": "80% 区間", "fc.band95": "95% 区間",
    "al.title": "アラート", "al.none": "アラートはありません。", "al.when": "日付", "al.store": "店舗",
    "al.kind": "ルール", "al.message": "内容", "al.ack": "確認済みにする", "al.acked": "確認済み",
    "ini.title": "施策", "ini.none": "登録された施策はありません（POST /v1/initiatives）。",
    "ini.name": "施策", "ini.kind": "種類", "ini.kpi": "狙う指標", "ini.stores": "実施店舗",
    "ini.period": "期間", "ini.effect": "効果", "ini.ci": "90% 信頼区間",
    "ini.not_measured": "未計測", "ini.status.no_controls": "比較店舗なし",
    "ini.status.too_few_pre_days": "実施前の日数が不足", "ini.status.too_few_post_days": "実施日数が不足",
    "ini.status.not_started": "未開始",
    "ini.chart": "{kpi}: 実施店舗と比較店舗（1.00 = 実施前の水準）",
    "ini.treated": "実施店舗", "ini.control": "比較店舗", "ini.band": "比較店舗 P10–P90",
    "ini.fit": "実施前の当てはまり", "ini.controls": "比較店舗", "ini.rmse": "日次の差のばらつき (RMSE)",
    "ini.corr": "相関", "ini.slope": "週あたりの乖離 (p)", "ini.parallel": "平行トレンド",
    "ini.yes": "成立", "ini.no": "不成立 — 比較店舗の妥当性に注意", "ini.hidden": "ほか {n} 店（閲覧権限なし）",
    "ini.as_of": "{date} までのデータで計測", "ini.significant": "有意",
    "store.primary": "最重要レバー", "store.peer_stores": "類似店: {list}",
    "store.budget": "予算と実績", "store.budget_total": "予算", "store.actual_total": "実績（予算のある日）",
    "store.achievement": "予算達成率", "store.no_budget": "この期間の予算は未登録です（POST /v1/budgets）。",
  },
};
const LOCALES = { en: "en-US", ja: "ja-JP" };
const METRICS = ["net_sales", "transactions", "visitors", "conversion_rate", "atv"];
const RATIO_METRICS = new Set(["conversion_rate", "capture_rate"]);
const YEN_METRICS = new Set(["net_sales", "atv", "sales_per_visitor"]);

const state = {
  lang: localStorage.getItem("tenpo.lang") || ((navigator.language || "en").startsWith("ja") ? "ja" : "en"),
  me: null, from: null, to: null, charts: {}, sort: { key: "net_sales", asc: false },
};
// Exposed for the browser tests: the charts and their data.
window.tenpo = state;

// -- formatting ------------------------------------------------------------------------
const t = (key, vars = {}) =>
  (I18N[state.lang][key] || I18N.en[key] || key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
const locale = () => LOCALES[state.lang];
// Industry names come from the data in English; show them in the user's language.
const industryName = (i) => (i ? (I18N[state.lang][`industry.${i}`] || I18N.en[`industry.${i}`] || i) : "");
// Sum that stays null when no value is known: an empty range is "—", never ¥0.
function sumOrNull(values) {
  const known = values.map(num).filter((v) => v !== null && !Number.isNaN(v));
  return known.length ? known.reduce((a, b) => a + b, 0) : null;
}
const COUNTER_METRICS = new Set(["visitors", "passersby", "conversion_rate", "capture_rate", "sales_per_visitor"]);
// Why a KPI cell of a total row is "—" (shown as its tooltip).
function naReason(tot, m) {
  if (!tot || !tot.days) return t("why.no_data");
  if (COUNTER_METRICS.has(m) && !tot.has_counter) return t("why.no_counter");
  if (!tot.has_pos && !COUNTER_METRICS.has(m)) return t("why.no_pos");
  return t("why.zero");
}
const naTitle = (v, why) => (num(v) === null ? ` title="${esc(why)}"` : "");
const num = (v) => (v === null || v === undefined || v === "" ? null : Number(v));
function fmtYen(v) {
  const n = num(v);
  if (n === null || Number.isNaN(n)) return t("na");
  return new Intl.NumberFormat(locale(), { style: "currency", currency: "JPY", maximumFractionDigits: 0 }).format(n);
}
function fmtInt(v) {
  const n = num(v);
  return n === null ? t("na") : new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 }).format(n);
}
function fmtPct(v) {
  const n = num(v);
  return n === null ? t("na") : new Intl.NumberFormat(locale(), { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(n);
}
function fmtDec(v, digits = 2) {
  const n = num(v);
  return n === null ? t("na") : new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(n);
}
function fmtMetric(name, v) {
  if (YEN_METRICS.has(name)) return fmtYen(v);
  if (RATIO_METRICS.has(name)) return fmtPct(v);
  if (name === "upt") return fmtDec(v);
  return fmtInt(v);
}
function fmtDate(iso, opts = { month: "short", day: "numeric" }) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Intl.DateTimeFormat(locale(), { ...opts, timeZone: "UTC" }).format(new Date(Date.UTC(y, m - 1, d)));
}
function fmtChange(rel) {
  if (rel === null || rel === undefined) return "";
  const sign = rel > 0 ? "+" : "";
  const cls = rel > 0 ? "up" : rel < 0 ? "down" : "";
  const text = sign + new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 1 }).format(rel);
  return `<span class="delta ${cls}">${text}</span>`;
}
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// -- API -------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}
async function api(path, opts = {}) {
  const resp = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" }, ...opts });
  if (resp.status === 204) return null;
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    if (resp.status === 401 && !path.startsWith("/v1/auth/")) {
      state.me = null;
      location.hash = "#/login";
    }
    throw new ApiError(resp.status, body);
  }
  return body;
}
async function optional(path) {
  try { return await api(path); } catch (e) { return null; }
}
const rangeQuery = () => `from=${state.from}&to=${state.to}`;
async function allKpis(grain, extra = "") {
  const stores = [];
  for (let offset = 0; ; offset += 200) {
    const page = await api(`/v1/kpis?${rangeQuery()}&grain=${grain}&limit=200&offset=${offset}${extra}`);
    stores.push(...page.stores);
    if (offset + page.limit >= page.total) return stores;
  }
}

// -- date range ------------------------------------------------------------------------
const isoDay = (d) => d.toISOString().slice(0, 10);
function addDays(iso, n) {
  const d = new Date(iso + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + n);
  return isoDay(d);
}
async function initRange() {
  const saved = JSON.parse(sessionStorage.getItem("tenpo.range") || "null");
  if (saved) { state.from = saved.from; state.to = saved.to; return; }
  const cov = await optional("/v1/coverage");
  const last = (cov && cov.last) || isoDay(new Date(Date.now() - 86400000));
  state.to = last;
  state.from = cov && cov.first && cov.first > addDays(last, -27) ? cov.first : addDays(last, -13);
}
function bindRange() {
  const from = document.getElementById("from"), to = document.getElementById("to");
  from.value = state.from; to.value = state.to;
  document.getElementById("range").onsubmit = (e) => {
    e.preventDefault();
    if (!from.value || !to.value || from.value > to.value) return;
    state.from = from.value; state.to = to.value;
    sessionStorage.setItem("tenpo.range", JSON.stringify({ from: state.from, to: state.to }));
    route();
  };
  document.getElementById("preset").onchange = (e) => {
    const days = Number(e.target.value);
    if (!days) return;
    from.value = addDays(to.value || state.to, -(days - 1));
  };
}

// -- i18n ------------------------------------------------------------------------------
function applyI18n(root = document) {
  document.documentElement.lang = state.lang;
  root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  const lang = document.getElementById("lang");
  if (lang) lang.textContent = state.lang === "ja" ? "English" : "日本語";
}
function toggleLang() {
  state.lang = state.lang === "ja" ? "en" : "ja";
  localStorage.setItem("tenpo.lang", state.lang);
  applyI18n();
  route();
}

// -- charts ----------------------------------------------------------------------------
function destroyCharts() {
  Object.values(state.charts).forEach((c) => c.destroy());
  state.charts = {};
}
function chart(id, canvas, config) {
  config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
  state.charts[id] = new Chart(canvas, config);
  return state.charts[id];
}
function metricChart(id, canvas, labels, name, values, type = "bar") {
  return chart(id, canvas, {
    type,
    data: { labels, datasets: [{ label: t(name), data: values, borderColor: "#2563eb", backgroundColor: "rgba(37,99,235,.55)", spanGaps: true, tension: .25 }] },
    options: {
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => fmtMetric(name, c.parsed.y) } } },
      scales: { y: { beginAtZero: true, ticks: { callback: (v) => fmtMetric(name, v) } } },
    },
  });
}
function sparkline(id, canvas, values) {
  return chart(id, canvas, {
    type: "line",
    data: { labels: values.map((_, i) => i), datasets: [{ data: values, borderColor: "#2563eb", borderWidth: 1.5, pointRadius: 0, spanGaps: true, fill: false }] },
    options: { responsive: false, plugins: { legend: { display: false }, tooltip: { enabled: false } }, scales: { x: { display: false }, y: { display: false } } },
  });
}

// -- views -----------------------------------------------------------------------------
const view = () => document.getElementById("view");

function showLogin() {
  document.getElementById("topbar").hidden = true;
  view().replaceChildren(document.getElementById("login-tpl").content.cloneNode(true));
  applyI18n(view());
  view().querySelector("[data-lang-toggle]").onclick = () => { toggleLang(); };
  document.getElementById("login-form").onsubmit = async (e) => {
    e.preventDefault();
    const err = document.getElementById("login-error");
    err.textContent = "";
    try {
      state.me = await api("/v1/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ email: document.getElementById("email").value, password: document.getElementById("password").value }),
      });
      await start();
      location.hash = "#/";
    } catch (ex) {
      err.textContent = ex.status === 401 ? t("login.failed") : t("error", { msg: ex.message });
    }
  };
}

function storeFlags(s, targetBelow) {
  const flags = [];
  const days = s.items;
  if ((s.missing_dates || []).length) flags.push(`<span class="badge gap" data-flag="gap" title="${esc(s.missing_dates.join(", "))}">${t("flag.gap")}</span>`);
  if (days.some((r) => r.flags.includes("pos_missing"))) flags.push(`<span class="badge gap" data-flag="pos">${t("flag.pos")}</span>`);
  if (days.some((r) => r.flags.includes("counter_missing"))) flags.push(`<span class="badge gap" data-flag="counter">${t("flag.counter")}</span>`);
  if (targetBelow) flags.push(`<span class="badge below" data-flag="below">${t("flag.below")}</span>`);
  return flags.join("");
}

// Targets come from the ML issue's endpoint when it exists; any shape with kpi + target works.
function targetFor(body, kpi) {
  if (!body) return null;
  const items = Array.isArray(body) ? body : body.items || body.targets || [];
  const hit = items.find((x) => x && (x.kpi === kpi || x.metric === kpi));
  if (!hit) return null;
  return { target: num(hit.target ?? hit.value), actual: num(hit.actual ?? null), peers: num(hit.peer_median ?? hit.cluster_median ?? null), primary: !!hit.is_primary, explanation: hit.explanation || "" };
}
// Benchmarks: the industry's published figure over all sizes (else any published band).
function benchmarkFor(body, kpi) {
  if (!body) return null;
  const items = (Array.isArray(body) ? body : body.items || []).filter((x) => x && x.kpi === kpi && x.published !== false);
  const hit = items.find((x) => x.size_band === "all") || items[0];
  return hit ? num(hit.median ?? hit.p50 ?? null) : null;
}

async function showOverview() {
  view().innerHTML = `<h1>${t("overview.title")}</h1><p class="muted">${t("loading")}</p>`;
  const [totals, daily] = await Promise.all([allKpis("total"), allKpis("day")]);
  const dailyById = Object.fromEntries(daily.map((s) => [s.store_id, s]));
  const stores = (await api("/v1/stores?limit=1000")).items;
  const meta = Object.fromEntries(stores.map((s) => [s.store_id, s]));
  const rows = totals.map((s) => {
    const tot = s.items[0] || {};
    return { id: s.store_id, code: s.code, name: s.name, industry: (meta[s.store_id] || {}).industry, tot, daily: dailyById[s.store_id] };
  });
  // Targets: one call per store while the endpoint exists (404 "no such endpoint" stops it).
  // (capped: a bulk targets endpoint would serve big chains better than one call per store)
  const targets = {};
  for (const r of rows.slice(0, 60)) {
    const body = await optional(`/v1/stores/${encodeURIComponent(r.id)}/targets?${rangeQuery()}`);
    if (body === null) break;
    targets[r.id] = body;
  }
  const chain = {
    net_sales: sumOrNull(rows.map((r) => r.tot.net_sales)),
    transactions: sumOrNull(rows.map((r) => r.tot.transactions)),
    visitors: sumOrNull(rows.map((r) => r.tot.visitors)),
  };
  const industries = [...new Set(rows.map((r) => r.industry).filter(Boolean))].sort();
  view().innerHTML = `
    <h1>${t("overview.title")} <span class="muted">${fmtDate(state.from, { year: "numeric", month: "short", day: "numeric" })} – ${fmtDate(state.to, { year: "numeric", month: "short", day: "numeric" })}</span></h1>
    <div class="cards">
      <div class="card"><div class="label">${t("chain.total")} · ${t("net_sales")}</div><div class="value" id="chain-sales" data-value="${chain.net_sales === null ? "" : chain.net_sales.toFixed(2)}"${naTitle(chain.net_sales, t("why.no_data"))}>${fmtYen(chain.net_sales)}</div></div>
      <div class="card"><div class="label">${t("transactions")}</div><div class="value">${fmtInt(chain.transactions)}</div></div>
      <div class="card"><div class="label">${t("visitors")}</div><div class="value">${fmtInt(chain.visitors)}</div></div>
      <div class="card"><div class="label">${t("conversion_rate")}</div><div class="value">${fmtPct(chain.visitors && chain.transactions !== null ? chain.transactions / chain.visitors : null)}</div></div>
    </div>
    <h2>${t("overview.stores", { n: rows.length })}</h2>
    <div class="toolbar">
      <input id="filter" type="search" placeholder="${t("overview.filter")}">
      <select id="industry"><option value="">${t("overview.all_industries")}</option>${industries.map((i) => `<option value="${esc(i)}">${esc(industryName(i))}</option>`).join("")}</select>
    </div>
    <div class="table-wrap"><table id="stores"><thead><tr>
      <th data-key="name">${t("store")}</th>${METRICS.map((m) => `<th data-key="${m}">${t(m)}</th>`).join("")}
      <th data-key="">${t("trend")}</th><th data-key="">${t("flags")}</th>
    </tr></thead><tbody></tbody></table></div>`;
  const tbody = view().querySelector("#stores tbody");
  const render = () => {
    destroyCharts();
    const q = document.getElementById("filter").value.trim().toLowerCase();
    const ind = document.getElementById("industry").value;
    const { key, asc } = state.sort;
    const shown = rows
      .filter((r) => (!q || `${r.code} ${r.name}`.toLowerCase().includes(q)) && (!ind || r.industry === ind))
      .sort((a, b) => {
        const va = key === "name" ? a.code : num(a.tot[key]) ?? -Infinity;
        const vb = key === "name" ? b.code : num(b.tot[key]) ?? -Infinity;
        return (va < vb ? -1 : va > vb ? 1 : 0) * (asc ? 1 : -1);
      });
    tbody.innerHTML = shown.map((r) => {
      const tgt = targetFor(targets[r.id], "net_sales");
      // Targets judge the store over the ML window (daily net sales), not the picked range.
      const below = tgt && tgt.target !== null && tgt.actual !== null && tgt.actual < tgt.target;
      return `<tr data-store-id="${esc(r.id)}">
        <td><a href="#/store/${encodeURIComponent(r.id)}">${esc(r.code)} ${esc(r.name)}</a></td>
        ${METRICS.map((m) => `<td class="num" data-kpi="${m}" data-value="${r.tot[m] ?? ""}"${naTitle(r.tot[m], naReason(r.tot, m))}>${fmtMetric(m, r.tot[m])}</td>`).join("")}
        <td><canvas class="spark" width="120" height="32"></canvas></td>
        <td>${storeFlags(r.daily || { items: [], missing_dates: [] }, below)}</td></tr>`;
    }).join("");
    tbody.querySelectorAll("tr").forEach((tr) => {
      const r = rows.find((x) => x.id === tr.dataset.storeId);
      const values = (r.daily ? r.daily.items : []).map((d) => num(d.net_sales));
      sparkline(`spark:${r.id}`, tr.querySelector("canvas"), values);
    });
    view().querySelectorAll("th").forEach((th) => {
      th.classList.toggle("sorted", th.dataset.key === key);
      th.classList.toggle("asc", th.dataset.key === key && asc);
    });
  };
  view().querySelectorAll("th[data-key]").forEach((th) => {
    if (!th.dataset.key) return;
    th.onclick = () => {
      state.sort = { key: th.dataset.key, asc: state.sort.key === th.dataset.key ? !state.sort.asc : th.dataset.key === "name" };
      render();
    };
  });
  document.getElementById("filter").oninput = render;
  document.getElementById("industry").onchange = render;
  render();
}

async function showStore(id) {
  view().innerHTML = `<p class="muted">${t("loading")}</p>`;
  let store;
  try {
    store = await api(`/v1/stores/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 404) {
      view().innerHTML = `<p class="notice" id="not-found">${t("store.not_found")}</p>`;
      return;
    }
    throw e;
  }
  const q = `${rangeQuery()}`;
  const base = `/v1/stores/${encodeURIComponent(id)}`;
  const [daily, total, tree] = await Promise.all([
    api(`${base}/kpis?${q}&grain=day`), api(`${base}/kpis?${q}&grain=total`), api(`${base}/sales-tree?${q}`),
  ]);
  let hourly = null;
  try { hourly = await api(`${base}/kpis?${q}&grain=hour`); } catch (e) { hourly = null; }
  const targets = await optional(`${base}/targets?${q}`);
  const budget = await optional(`${base}/budget?${q}`);
  const forecast = await optional(`${base}/forecast?kpi=visitors&grain=day`);
  const bench = store.industry ? await optional(`/v1/benchmarks?industry=${encodeURIComponent(store.industry)}`) : null;
  const tot = total.items[0] || {};
  const compareRows = ["net_sales", "conversion_rate", "atv", "capture_rate", "upt"].map((m) => {
    const tg = targetFor(targets, m);
    // Net sales targets are per day: compare with the range's daily average.
    const actual = m === "net_sales" ? (tot.days ? num(tot.net_sales) / tot.days : null) : tot[m];
    const label = (m === "net_sales" ? t("net_sales_per_day") : t(m))
      + (tg && tg.primary ? ` <span class="badge" data-primary="${m}" title="${esc(tg.explanation)}">${t("store.primary")}</span>` : "");
    // A "—" says why: no target yet, peers hidden (fewer than 5), no published benchmark.
    const noTarget = tg ? t("why.hidden_peers") : t("why.no_target");
    return `<tr><td>${label}</td><td class="num" data-kpi="${m}"${naTitle(actual, naReason(tot, m))}>${fmtMetric(m, actual)}</td>
      <td class="num"${tg && tg.target !== null ? "" : ` title="${esc(noTarget)}"`}>${tg && tg.target !== null ? fmtMetric(m, tg.target) : t("na")}</td>
      <td class="num"${tg && tg.peers !== null ? "" : ` title="${esc(noTarget)}"`}>${tg && tg.peers !== null ? fmtMetric(m, tg.peers) : t("na")}</td>
      <td class="num"${benchmarkFor(bench, m) !== null ? "" : ` title="${esc(t("why.no_bench"))}"`}>${benchmarkFor(bench, m) !== null ? fmtMetric(m, benchmarkFor(bench, m)) : t("na")}</td></tr>`;
  }).join("");
  const noPos = daily.items.filter((r) => r.flags.includes("pos_missing")).map((r) => fmtDate(r.business_date));
  const noCounter = daily.items.filter((r) => r.flags.includes("counter_missing")).map((r) => fmtDate(r.business_date));
  const missing = daily.missing_dates.map((d) => fmtDate(d));
  const quality = [
    missing.length ? `<li data-flag="gap">${t("store.missing_dates", { dates: missing.join(", ") })}</li>` : "",
    noPos.length ? `<li data-flag="pos">${t("store.no_pos_days", { dates: noPos.join(", ") })}</li>` : "",
    noCounter.length ? `<li data-flag="counter">${t("store.no_counter_days", { dates: noCounter.join(", ") })}</li>` : "",
  ].join("");
  const c = tree.change;
  const node = (name, value, fmt) => `<div class="card node" data-tree="${name}"><div class="label">${t(name)}</div>
    <div class="value">${fmt(value)}</div><div class="muted">${fmt(tree.previous[name])} ${fmtChange(c[name] && c[name].relative)}</div></div>`;
  view().innerHTML = `
    <h1 id="store-title">${esc(store.code)} ${esc(store.name)} <span class="muted">${esc(industryName(store.industry))} ${esc(store.region || "")}</span></h1>
    <div class="cards">${["net_sales", "transactions", "visitors", "conversion_rate", "atv", "upt"].map((m) =>
      `<div class="card"><div class="label">${t(m)}</div><div class="value" data-kpi="${m}" data-value="${tot[m] ?? ""}">${fmtMetric(m, tot[m])}</div></div>`).join("")}</div>
    <h2>${t("store.tree")} <span class="muted">${t("store.tree_prev", { from: fmtDate(tree.previous.from), to: fmtDate(tree.previous.to) })}</span></h2>
    <div class="tree">${node("net_sales", tree.current.net_sales, fmtYen)}<span class="op">=</span>
      ${node("passersby", tree.current.passersby, fmtInt)}<span class="op">×</span>
      ${node("capture_rate", tree.current.capture_rate, fmtPct)}<span class="op">×</span>
      ${node("conversion_rate", tree.current.conversion_rate, fmtPct)}<span class="op">×</span>
      ${node("atv", tree.current.atv, fmtYen)}</div>
    <h2>${t("store.daily")}</h2>
    <div class="grid2">${["net_sales", "visitors", "conversion_rate", "atv"].map((m) =>
      `<div class="chart"><h3>${t(m)}</h3><canvas id="daily-${m}"></canvas></div>`).join("")}</div>
    ${videoTable(daily.items)}
    <h2>${t("store.hourly")}</h2>
    ${hourly ? `<div class="grid2">${["net_sales", "visitors", "conversion_rate", "atv"].map((m) =>
      `<div class="chart"><h3>${t(m)}</h3><canvas id="hourly-${m}"></canvas></div>`).join("")}</div>` : `<p class="muted">${t("store.no_hourly")}</p>`}
    <h2>${t("store.compare_title")}</h2>
    ${targets && targets.cluster ? `<p class="muted" id="peers">${esc(targets.cluster.description)} · ${t("store.peer_stores", { list: esc(((targets.items.find((x) => x.peers && x.peers.stores) || {}).peers || { stores: [] }).stores.join(", ") || t("na")) })}</p>` : ""}
    <div class="table-wrap"><table id="vs"><thead><tr><th></th><th>${t("store.actual")}</th><th>${t("store.target")}</th><th>${t("store.peers")}</th><th>${t("store.benchmark")}</th></tr></thead><tbody>${compareRows}</tbody></table></div>
    <h2>${t("store.budget")}</h2>
    ${budget && budget.days.some((d) => d.budget !== null) ? `<div class="cards" id="budget">
      <div class="card"><div class="label">${t("store.budget_total")}</div><div class="value" data-budget="${budget.budget_total}">${fmtYen(budget.budget_total)}</div></div>
      <div class="card"><div class="label">${t("store.actual_total")}</div><div class="value">${fmtYen(budget.actual_total)}</div></div>
      <div class="card"><div class="label">${t("store.achievement")}</div><div class="value" data-achievement="${budget.achievement ?? ""}">${budget.achievement === null ? t("na") : fmtPct(budget.achievement)}</div></div></div>`
      : `<p class="muted" id="budget">${t("store.no_budget")}</p>`}
    <h2>${t("store.quality")}</h2>
    ${quality ? `<ul class="flags" id="quality">${quality}</ul>` : `<p id="quality" class="muted">${t("store.quality_ok")}</p>`}
    <h2>${t("fc.title", { kpi: t("visitors") })}</h2>
    ${forecast && forecast.points.length ? `<div class="chart" style="height:280px" id="forecast" data-points="${forecast.points.length}"><canvas id="forecast-chart"></canvas></div>`
      : `<p class="muted" id="forecast">${t("fc.none")}</p>`}
    <h2>${t("st.title")}</h2>
    <p class="muted">${t("st.help")}</p>
    <input type="file" id="staffing-file" accept=".csv,text/csv">
    <div id="staffing-result"></div>`;
  document.getElementById("staffing-file").addEventListener("change", (ev) => {
    const file = ev.target.files && ev.target.files[0];
    if (file) staffingUpload(file).catch((e) => console.warn("staffing", e));
  });
  destroyCharts();
  if (forecast && forecast.points.length) forecastChart(document.getElementById("forecast-chart"), forecast.points);
  const labels = daily.items.map((r) => fmtDate(r.business_date));
  for (const m of ["net_sales", "visitors", "conversion_rate", "atv"]) {
    metricChart(`daily:${m}`, document.getElementById(`daily-${m}`), labels, m, daily.items.map((r) => num(r[m])), m === "net_sales" || m === "visitors" ? "bar" : "line");
  }
  if (hourly) {
    const byHour = Array.from({ length: 24 }, () => ({ net_sales: 0, transactions: 0, visitors: 0, conv_t: 0, conv_v: 0 }));
    for (const r of hourly.items) {
      const h = byHour[r.hour];
      h.net_sales += num(r.net_sales) || 0;
      h.transactions += r.transactions || 0;
      h.visitors += r.visitors || 0;
      if (r.transactions !== null && r.visitors !== null) { h.conv_t += r.transactions; h.conv_v += r.visitors; }
    }
    const hours = byHour.map((_, i) => `${i}:00`);
    const series = {
      net_sales: byHour.map((h) => h.net_sales),
      visitors: byHour.map((h) => h.visitors),
      conversion_rate: byHour.map((h) => (h.conv_v ? h.conv_t / h.conv_v : null)),
      atv: byHour.map((h) => (h.transactions ? h.net_sales / h.transactions : null)),
    };
    for (const m of Object.keys(series)) {
      metricChart(`hourly:${m}`, document.getElementById(`hourly-${m}`), hours, m, series[m], m === "net_sales" || m === "visitors" ? "bar" : "line");
    }
  }
}

// The daily mart's PersonID KPIs, one row per day with video (shown only for camera stores).
const VIDEO_KPIS = ["unique_visitors", "repeat_visitors", "repeat_rate", "dwell_time_median_s", "dwell_time_mean_s", "open_visits"];
function fmtVideo(name, v) {
  if (name === "repeat_rate") return fmtPct(v);
  if (name.startsWith("dwell_time")) return num(v) === null ? t("na") : t("min", { n: fmtDec(num(v) / 60, 1) });
  return fmtInt(v);
}
function videoTable(items) {
  const days = items.filter((r) => r.has_video);
  if (!days.length) return "";
  return `<h2>${t("store.video")}</h2><p class="muted">${t("store.video_help")}</p>
    <div class="table-wrap"><table id="video"><thead><tr><th>${t("date")}</th>${VIDEO_KPIS.map((m) => `<th>${t(m)}</th>`).join("")}</tr></thead>
    <tbody>${days.map((r) => `<tr data-date="${r.business_date}"><td>${fmtDate(r.business_date)}</td>${VIDEO_KPIS.map((m) =>
      `<td class="num" data-kpi="${m}" data-value="${r[m] ?? ""}">${fmtVideo(m, r[m])}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`;
}

async function showCompare(params) {
  const stores = (await api("/v1/stores?limit=1000")).items;
  const picked = (params.get("ids") || stores.slice(0, 3).map((s) => s.store_id).join(",")).split(",").filter(Boolean);
  const metric = params.get("metric") || "net_sales";
  view().innerHTML = `<h1>${t("compare.title")}</h1>
    <div class="picker" id="picker">${stores.map((s) => `<label><input type="checkbox" value="${esc(s.store_id)}" ${picked.includes(s.store_id) ? "checked" : ""}> ${esc(s.code)} ${esc(s.name)}</label>`).join("")}</div>
    <div class="toolbar"><label>${t("compare.metric")} <select id="metric">${["net_sales", "transactions", "visitors", "passersby", "conversion_rate", "capture_rate", "atv", "upt"].map((m) => `<option value="${m}" ${m === metric ? "selected" : ""}>${t(m)}</option>`).join("")}</select></label></div>
    <div id="compare-body"></div>`;
  const update = () => {
    const ids = [...document.querySelectorAll("#picker input:checked")].map((i) => i.value);
    location.hash = `#/compare?ids=${ids.join(",")}&metric=${document.getElementById("metric").value}`;
  };
  document.querySelectorAll("#picker input").forEach((i) => { i.onchange = update; });
  document.getElementById("metric").onchange = update;
  const body = document.getElementById("compare-body");
  if (!picked.length) { body.innerHTML = `<p class="muted">${t("compare.pick")}</p>`; return; }
  const ids = picked.map((i) => `&store_id=${encodeURIComponent(i)}`).join("");
  const [daily, totals] = await Promise.all([allKpis("day", ids), allKpis("total", ids)]);
  const dates = [...new Set(daily.flatMap((s) => s.items.map((r) => r.business_date)))].sort();
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];
  body.innerHTML = `<div class="chart" style="height:340px"><canvas id="compare-chart"></canvas></div>
    <h2></h2><div class="table-wrap"><table id="compare-table"><thead><tr><th>${t("store")}</th>${["net_sales", "transactions", "visitors", "conversion_rate", "capture_rate", "atv", "upt"].map((m) => `<th>${t(m)}</th>`).join("")}</tr></thead>
    <tbody>${totals.map((s) => { const r = s.items[0] || {}; return `<tr data-store-id="${esc(s.store_id)}"><td><a href="#/store/${encodeURIComponent(s.store_id)}">${esc(s.code)} ${esc(s.name)}</a></td>${["net_sales", "transactions", "visitors", "conversion_rate", "capture_rate", "atv", "upt"].map((m) => `<td class="num" data-kpi="${m}" data-value="${r[m] ?? ""}">${fmtMetric(m, r[m])}</td>`).join("")}</tr>`; }).join("")}</tbody></table></div>`;
  destroyCharts();
  chart("compare", document.getElementById("compare-chart"), {
    type: "line",
    data: {
      labels: dates.map((d) => fmtDate(d)),
      datasets: daily.map((s, i) => {
        const byDate = Object.fromEntries(s.items.map((r) => [r.business_date, num(r[metric])]));
        return { label: `${s.code} ${s.name}`, data: dates.map((d) => byDate[d] ?? null), borderColor: colors[i % colors.length], backgroundColor: colors[i % colors.length], spanGaps: true, tension: .25 };
      }),
    },
    options: { plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmtMetric(metric, c.parsed.y)}` } } }, scales: { y: { ticks: { callback: (v) => fmtMetric(metric, v) } } } },
  });
}

function forecastChart(canvas, points) {
  const band = (key, color) => ({ data: points.map((p) => p[key]), borderWidth: 0, pointRadius: 0, backgroundColor: color, fill: "+1" });
  chart("forecast", canvas, {
    type: "line",
    data: {
      labels: points.map((p) => fmtDate(p.date)),
      datasets: [
        { label: t("fc.band95"), ...band("hi_95", "rgba(37,99,235,.12)") },
        { label: t("fc.band80"), ...band("hi_80", "rgba(37,99,235,.22)") },
        { label: "", ...band("lo_80", "rgba(37,99,235,.12)") },
        { label: "", data: points.map((p) => p.lo_95), borderWidth: 0, pointRadius: 0, fill: false },
        { label: t("fc.median"), data: points.map((p) => p.mean), borderColor: "#2563eb", pointRadius: 0, fill: false },
      ],
    },
    options: { plugins: { legend: { labels: { filter: (item) => item.text !== "" } } }, scales: { y: { beginAtZero: true, ticks: { callback: (v) => fmtInt(v) } } } },
  });
}

// -- staffing ----------------------------------------------------------------------------
const STAFFING_ROWS = 48;
async function staffingUpload(file) {
  const out = document.getElementById("staffing-result");
  const resp = await fetch("/v1/staffing", {
    method: "POST", credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "text/csv" }, body: await file.text(),
  });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    const rows = (body && body.errors) || [];
    out.innerHTML = `<div class="notice" id="staffing-errors"><p>${t("st.errors")} ${esc((body && body.detail) || resp.status)}</p>
      ${rows.length ? `<ul>${rows.map((e) => `<li data-row="${e.row}">${e.row}: ${esc(e.message)}</li>`).join("")}</ul>` : ""}</div>`;
    return;
  }
  const rec = body.recommendation;
  out.innerHTML = `<div class="cards" id="staffing">
      <div class="card"><div class="label">${t("st.vpsh")}</div><div class="value" data-vpsh="${body.visitors_per_staff_hour ?? ""}">${body.visitors_per_staff_hour === null ? t("na") : fmtDec(body.visitors_per_staff_hour, 1)}</div></div>
      <div class="card"><div class="label">${t("st.target")}</div><div class="value" data-target="${body.target_load ?? ""}">${body.target_load === null ? t("na") : fmtDec(body.target_load, 1)}</div></div>
      <div class="card"><div class="label">${t("st.strained")}</div><div class="value" data-strained="${body.strained_hours.join(",")}">${body.strained_hours.length ? body.strained_hours.map((h) => `${h}:00`).join(", ") : t("na")}</div></div>
      <div class="card"><div class="label">${t("st.extra")}</div><div class="value" data-extra="${body.expected_extra_transactions_per_week}">${fmtDec(body.expected_extra_transactions_per_week, 1)}</div></div></div>
    <h3>${t("st.curve")}</h3>
    <div class="table-wrap"><table id="staffing-curve"><thead><tr><th>${t("st.load")}</th><th>${t("st.hours")}</th><th>${t("conversion_rate")}</th></tr></thead><tbody>
      ${body.curve.map((b) => `<tr><td>${fmtDec(b.load_from, 1)}–${fmtDec(b.load_to, 1)}</td><td class="num">${fmtInt(b.hours)}</td><td class="num">${fmtPct(b.conversion)}</td></tr>`).join("")}</tbody></table></div>
    <h3>${t("st.rec")} ${rec.length > STAFFING_ROWS ? `<span class="muted">${t("st.more", { n: STAFFING_ROWS, total: rec.length })}</span>` : ""}</h3>
    <div class="table-wrap"><table id="staffing-rec" data-hours="${rec.length}"><thead><tr><th>${t("st.date")}</th><th>${t("st.hour")}</th><th>${t("st.visitors")}</th><th>${t("st.staff")}</th></tr></thead><tbody>
      ${rec.slice(0, STAFFING_ROWS).map((r) => `<tr><td>${fmtDate(r.date)}</td><td>${r.hour}:00</td><td class="num">${fmtDec(r.visitors, 1)}</td><td class="num" data-staff="${r.staff}">${r.staff}</td></tr>`).join("")}</tbody></table></div>`;
}

// -- alerts ------------------------------------------------------------------------------
async function showAlerts() {
  view().innerHTML = `<p class="muted">${t("loading")}</p>`;
  const page = await api("/v1/alerts");
  const rows = page.items.map((a) => `<tr data-alert="${esc(a.alert_id)}"><td>${fmtDate(a.business_date)}</td>
    <td><a href="#/store/${encodeURIComponent(a.store_id)}">${esc(a.store_id)}</a></td><td>${esc(a.rule_id)}</td><td>${esc(a.message)}</td>
    <td>${a.acknowledged_at ? `<span class="muted">${t("al.acked")}</span>` : `<button type="button" data-ack="${esc(a.alert_id)}">${t("al.ack")}</button>`}</td></tr>`).join("");
  view().innerHTML = `<h1>${t("al.title")}</h1>` + (page.items.length
    ? `<div class="table-wrap"><table id="alerts"><thead><tr><th>${t("al.when")}</th><th>${t("al.store")}</th><th>${t("al.kind")}</th><th>${t("al.message")}</th><th></th></tr></thead><tbody>${rows}</tbody></table></div>`
    : `<p class="muted" id="alerts-none">${t("al.none")}</p>`);
  view().querySelectorAll("button[data-ack]").forEach((b) => {
    b.onclick = async () => {
      await api(`/v1/alerts/${encodeURIComponent(b.dataset.ack)}/ack`, { method: "POST" });
      await showAlerts();
    };
  });
}

// -- initiatives -------------------------------------------------------------------------
function effectCell(e) {
  if (!e) return `<span class="muted">${t("ini.not_measured")}</span>`;
  if (e.status !== "ok") return `<span class="muted">${t(`ini.status.${e.status}`)}</span>`;
  return `${fmtChange(e.effect)}`;
}
const ciText = (e) => (e && e.status === "ok" ? `[${fmtChange(e.ci_low)}, ${fmtChange(e.ci_high)}]` : t("na"));

async function showInitiatives() {
  view().innerHTML = `<p class="muted">${t("loading")}</p>`;
  const page = await api("/v1/initiatives");
  const effects = await Promise.all(page.items.map((i) => optional(`/v1/initiatives/${encodeURIComponent(i.initiative_id)}/effect`)));
  const rows = page.items.map((i, n) => {
    const e = effects[n] && effects[n].items.find((x) => x.kpi === i.kpi);
    return `<tr data-initiative="${esc(i.initiative_id)}"><td><a href="#/initiative/${encodeURIComponent(i.initiative_id)}">${esc(i.initiative_id)} ${esc(i.name)}</a></td>
      <td>${esc(i.kind)}</td><td>${t(i.kpi)}</td><td class="num">${i.stores.length + i.stores_hidden}</td>
      <td>${fmtDate(i.start)} – ${fmtDate(i.end)}</td><td class="num" data-effect="${e && e.effect !== null ? e.effect : ""}">${effectCell(e)}</td><td class="num">${ciText(e)}</td></tr>`;
  }).join("");
  view().innerHTML = `<h1>${t("ini.title")}</h1>` + (page.items.length
    ? `<div class="table-wrap"><table id="initiatives"><thead><tr><th>${t("ini.name")}</th><th>${t("ini.kind")}</th><th>${t("ini.kpi")}</th><th>${t("ini.stores")}</th><th>${t("ini.period")}</th><th>${t("ini.effect")}</th><th>${t("ini.ci")}</th></tr></thead><tbody>${rows}</tbody></table></div>`
    : `<p class="muted" id="initiatives-none">${t("ini.none")}</p>`);
}

async function showInitiative(id) {
  view().innerHTML = `<p class="muted">${t("loading")}</p>`;
  let body;
  try {
    body = await api(`/v1/initiatives/${encodeURIComponent(id)}/effect`);
  } catch (e) {
    if (e.status === 404) { view().innerHTML = `<p class="notice" id="not-found">${t("store.not_found")}</p>`; return; }
    throw e;
  }
  const ini = body.initiative;
  const aimed = body.items.find((e) => e.kpi === ini.kpi) || body.items[0];
  const rows = body.items.map((e) => `<tr data-kpi="${e.kpi}"><td>${t(e.kpi)}</td><td class="num">${effectCell(e)}</td><td class="num">${ciText(e)}</td>
    <td>${e.significant ? t("ini.significant") : ""}</td><td class="num">${e.status === "ok" ? `${fmtMetric(e.kpi, e.treated_mean_pre)} → ${fmtMetric(e.kpi, e.treated_mean_post)}` : t("na")}</td>
    <td class="num">${e.status === "ok" ? `${fmtMetric(e.kpi, e.control_mean_pre)} → ${fmtMetric(e.kpi, e.control_mean_post)}` : t("na")}</td></tr>`).join("");
  const fit = aimed && aimed.status === "ok" ? `<ul class="flags" id="fit">
      <li>${t("ini.controls")}: ${aimed.controls.map(esc).join(", ")}${aimed.controls_hidden ? ` ${t("ini.hidden", { n: aimed.controls_hidden })}` : ""}</li>
      <li>${t("ini.rmse")}: ${fmtDec(aimed.pre_rmse, 3)}</li><li>${t("ini.corr")}: ${fmtDec(aimed.pre_corr, 2)}</li>
      <li>${t("ini.slope")}: ${fmtChange(aimed.pre_slope_per_week)} (${fmtDec(aimed.pre_slope_p, 2)})</li>
      <li data-parallel="${aimed.parallel_trends}">${t("ini.parallel")}: ${aimed.parallel_trends ? t("ini.yes") : t("ini.no")}</li></ul>` : "";
  view().innerHTML = `<h1 id="initiative-title">${esc(ini.name)} <span class="muted">${esc(ini.initiative_id)} · ${t(ini.kpi)} · ${fmtDate(ini.start)} – ${fmtDate(ini.end)}</span></h1>
    <p class="muted">${esc(ini.description)} ${body.as_of ? t("ini.as_of", { date: fmtDate(body.as_of) }) : t("ini.not_measured")}</p>
    <div class="table-wrap"><table id="effects"><thead><tr><th></th><th>${t("ini.effect")}</th><th>${t("ini.ci")}</th><th></th><th>${t("ini.treated")}</th><th>${t("ini.control")}</th></tr></thead><tbody>${rows}</tbody></table></div>
    ${aimed && aimed.status === "ok" ? `<h2>${t("ini.chart", { kpi: t(aimed.kpi) })}</h2><div class="chart" style="height:320px"><canvas id="effect-chart"></canvas></div>` : ""}
    ${fit ? `<h2>${t("ini.fit")}</h2>${fit}` : ""}`;
  destroyCharts();
  if (!aimed || aimed.status !== "ok") return;
  const s = aimed.series;
  chart("effect", document.getElementById("effect-chart"), {
    type: "line",
    data: {
      labels: s.map((p) => fmtDate(p.date)),
      datasets: [
        { label: t("ini.band"), data: s.map((p) => p.control_high), borderWidth: 0, pointRadius: 0, backgroundColor: "rgba(100,116,139,.18)", fill: "+1", spanGaps: true },
        { label: "", data: s.map((p) => p.control_low), borderWidth: 0, pointRadius: 0, fill: false, spanGaps: true },
        { label: t("ini.control"), data: s.map((p) => p.control), borderColor: "#64748b", borderDash: [4, 3], pointRadius: 0, spanGaps: true },
        { label: t("ini.treated"), data: s.map((p) => p.treated), borderColor: "#dc2626", pointRadius: s.map((p) => (p.period === "post" ? 2 : 0)), spanGaps: true },
      ],
    },
    options: { plugins: { legend: { labels: { filter: (item) => item.text !== "" } } }, scales: { y: { ticks: { callback: (v) => fmtDec(v, 2) } } } },
  });
}

// -- routing ---------------------------------------------------------------------------
async function route() {
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  if (path === "/login" || !state.me) { destroyCharts(); showLogin(); return; }
  document.getElementById("topbar").hidden = false;
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === `#${path}`));
  bindRange();
  try {
    if (path.startsWith("/store/")) await showStore(decodeURIComponent(path.slice(7)));
    else if (path === "/compare") await showCompare(new URLSearchParams(query || ""));
    else if (path === "/initiatives") await showInitiatives();
    else if (path === "/alerts") await showAlerts();
    else if (path.startsWith("/initiative/")) await showInitiative(decodeURIComponent(path.slice(12)));
    else await showOverview();
    document.body.dataset.ready = hash;
  } catch (e) {
    if (e.status !== 401) view().innerHTML = `<p class="error">${esc(t("error", { msg: e.message }))}</p>`;
  }
}

async function start() {
  document.getElementById("who").textContent = state.me.email || state.me.tenant_id;
  await initRange();
}

document.addEventListener("DOMContentLoaded", async () => {
  applyI18n();
  document.getElementById("lang").onclick = toggleLang;
  document.getElementById("logout").onclick = async () => {
    await api("/v1/auth/logout", { method: "POST" }).catch(() => null);
    state.me = null;
    sessionStorage.removeItem("tenpo.range");
    location.hash = "#/login";
  };
  window.addEventListener("hashchange", route);
  try {
    state.me = await api("/v1/auth/me");
    await start();
  } catch (e) {
    state.me = null;
  }
  if (state.me && location.hash === "#/login") location.hash = "#/";
  else route();
});
