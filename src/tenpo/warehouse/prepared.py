"""KPI jobs on DuckDB with their SQL compiled once per shape, not once per run.

Building a job's Ibis expression and compiling it to SQL costs about as much CPU as DuckDB
then spends on a day of 1,000 stores (Ibis' rewrites and sqlglot's generator, ~0.1 s). The
SQL depends only on the job, its parameters, the schemas of its input tables and *which*
dates it covers relative to each other, so :func:`run_job` compiles the job once over
placeholder tables and keeps the SQL for the life of the process:

* every input table becomes a placeholder name; at run time the real input is bound to
  that name (an in-memory Arrow table is registered as is, zero copy; any other expression
  becomes a temporary view over its own SQL, so DuckDB still pushes filters into the scans);
* ``days`` is compiled for a sentinel range (year 1200) with the same gaps as the wanted
  dates; the job's date literals, all derived from ``days``, are shifted to the real dates
  when the SQL is rendered. So one template serves every daily run (and every backfill
  range of the same length), and literals stay literals, which DuckDB folds into its scans
  (a ``days`` table joined instead would cost each scan a semi join).

A job may be templated only if its SQL depends on ``days`` through date literals alone (not
through branches on their values). A template whose sentinel years appear anywhere but in
date literals (a date derived from ``days`` written as a string or timestamp) is refused and
the job compiled on every call; constant dates far from the sentinel are left as they are.
``tests/warehouse/test_prepared.py`` checks that each KPI job's rendered template equals the
SQL compiled for the real dates. The jobs stay plain, portable Ibis functions; only the
DuckDB warehouse runs them through here, and a miss costs one compile, as before.

A process-wide cache alone is cold in every process, and Dagster's default executor starts
each step in a new one. A :class:`TemplateStore` (the warehouse keeps one under its data
dir) also keeps templates as files, so a later process renders the SQL instead of compiling
it. Only what is sure to give the same SQL in another process is kept there: a job defined
at module level in the ``tenpo`` package, keyed by its qualified name, the hash of tenpo's
source, the Ibis, sqlglot and DuckDB versions, the compiler, the input schemas and every
other argument as text (plain values, dates, tuples and tenpo dataclasses of them; any other
argument keeps the job out of the store). A closure is never cached, in memory or on disk.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.operations as ops
import ibis.expr.schema as sch
import pyarrow as pa
from ibis.backends.duckdb import Backend as DuckDBBackend
from ibis.backends.duckdb.converter import DuckDBPyArrowData

__all__ = ["TemplateStore", "clear_cache", "run_job"]

log = logging.getLogger(__name__)

_PLACEHOLDER = "_tenpo_job_input_{}"
_SENTINEL = date(1200, 1, 1)
# Dates within this distance of the sentinel are the job's ``days`` or derived from them
# (a repeat window of up to 100 years); any other date literal is left as it is.
_SENTINEL_REACH = timedelta(days=36_600)
# How DuckDB's Ibis compiler writes a date literal.
_COPY_WARNING = "Arrow output on a DB-API result makes an extra copy"
_DATE_LITERAL = re.compile(r"MAKE_DATE\((\d{1,4}), (\d{1,2}), (\d{1,2})\)")
# The years of the sentinel's reach (1100-1300) anywhere else in the SQL.
_SENTINEL_YEAR = re.compile(r"(?<!\d)1[123]\d\d(?!\d)")


@dataclass(frozen=True)
class _Template:
    sql: str
    schema: sch.Schema  # the job's result schema: it types the rows DuckDB returns


# None: the job cannot be templated. Least recently used first; a process sees a handful of
# shapes (three jobs, a few range lengths), the bound only keeps odd backfills from piling up.
_cache: OrderedDict[Hashable, _Template | None] = OrderedDict()
_CACHE_SIZE = 64
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every compiled job (for tests and benchmarks that measure a cold compile)."""
    with _lock:
        _cache.clear()


class TemplateStore:
    """Compiled job templates as files in ``root`` (one JSON file per shape), shared by the
    processes of one data dir. Writes are atomic; an unreadable file or one holding another
    key counts as absent and is written anew."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def load(self, key: str) -> _Template | None:
        """The template stored under ``key``; None when there is none (or it is unusable)."""
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            if data.get("key") != key:  # a hash collision or a foreign file
                return None
            arrow = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["schema"])))
            return _Template(str(data["sql"]), sch.Schema.from_pyarrow(arrow))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
            log.warning("ignoring the stored job template %s: %s", self._path(key), exc)
            return None

    def save(self, key: str, template: _Template) -> None:
        """Keep ``template`` under ``key`` (skipped when its schema would not read back equal)."""
        arrow = template.schema.to_pyarrow()
        if sch.Schema.from_pyarrow(arrow) != template.schema:
            return
        text = json.dumps(
            {
                "key": key,
                "sql": template.sql,
                "schema": base64.b64encode(arrow.serialize().to_pybytes()).decode("ascii"),
            }
        )
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:  # a read-only or full data dir costs a compile, nothing else
            log.warning("could not store a job template in %s: %s", self.root, exc)
            tmp.unlink(missing_ok=True)


def run_job(
    con: DuckDBBackend,
    job: Callable[..., ibis.Table],
    *args: Any,
    order_by: Sequence[str] = (),
    store: TemplateStore | None = None,
    **params: Any,
) -> pa.Table:
    """``job(*args, **params)`` (ordered by ``order_by``) executed on ``con`` into Arrow.

    Arguments that are Ibis tables are the job's inputs; ``days`` (a sequence of dates or
    None) is its date range; every other argument must be hashable and is compiled in.
    A closure's SQL is never cached; other jobs' is keyed by the function object itself,
    and with a ``store`` also kept for other processes (module docstring).
    The result equals ``con.to_pyarrow(job(*args, **params).order_by(order_by))``.
    """
    inputs: list[ibis.Table] = []

    def shape(value: Any) -> Hashable:
        if isinstance(value, ibis.Table):
            inputs.append(value)
            return ("table", value.schema())
        return ("value", value)

    arg_shapes = tuple(shape(a) for a in args)
    # Inputs are numbered in this order: positional, then keyword arguments by name.
    param_shapes = tuple((k, shape(params[k])) for k in sorted(params) if k != "days")
    days = params.get("days")
    wanted = None if days is None else sorted(set(days))
    gaps = None if wanted is None else tuple((d - wanted[0]).days for d in wanted)
    if getattr(job, "__closure__", None):
        # A closure may capture values that shape its SQL, a tenant say, and two closures of
        # one factory share a name: compiled each call, never cached.
        expr = job(*args, **params)
        return con.to_pyarrow(expr.order_by(list(order_by)) if order_by else expr)
    compiler = type(con.compiler).__qualname__  # tenpo's DuckDB compiler or Ibis' own
    key = (compiler, job, arg_shapes, param_shapes, gaps, tuple(order_by))

    with _lock:
        template = _cache.get(key, _MISSING)
        if template is not _MISSING:
            _cache.move_to_end(key)
    if template is _MISSING:
        stored = None if store is None else _stored_key(key)
        template = None if store is None or stored is None else store.load(stored)
        if template is None:
            template = _compile(con, job, args, params, order_by, wanted)
            if store is not None and stored is not None and template is not None:
                store.save(stored, template)
        with _lock:
            _cache[key] = template
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    if template is None:  # not templatable: an ordinary compile each time
        expr = job(*args, **params)
        return con.to_pyarrow(expr.order_by(list(order_by)) if order_by else expr)
    assert isinstance(template, _Template)
    sql = template.sql if wanted is None else _shift(template.sql, wanted[0] - _SENTINEL)
    return _execute(con, sql, template.schema, inputs)


_MISSING: Any = object()
_STORE_FORMAT = 1


def _stored_key(key: tuple[Any, ...]) -> str | None:
    """The in-memory ``key`` as text that means the same SQL in any process, or None when the
    job or an argument has no such text (then the template stays in this process)."""
    compiler, job, arg_shapes, param_shapes, gaps, order_by = key
    module, qualname = getattr(job, "__module__", ""), getattr(job, "__qualname__", "")
    if not (module == "tenpo" or module.startswith("tenpo.")) or "<" in qualname:
        return None
    try:
        shapes = [_text(s) for s in arg_shapes] + [f"{k}={_text(s)}" for k, s in param_shapes]
    except _NoText:
        return None
    code = _code_version()
    if code is None:
        return None
    return json.dumps(
        [_STORE_FORMAT, code, compiler, f"{module}:{qualname}", shapes, gaps, order_by]
    )


class _NoText(Exception):
    """A value without a text that is the same in every process."""


def _text(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and value[0] in ("table", "value"):
        kind, inner = value
        if kind == "table":
            return "table(" + ", ".join(f"{n}: {t}" for n, t in inner.items()) + ")"
        return _value_text(inner)
    raise _NoText(repr(value))


def _value_text(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float | str | date | datetime | timedelta):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, tuple | list):
        return f"{type(value).__name__}[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, frozenset):
        return "frozenset{" + ", ".join(sorted(_value_text(v) for v in value)) + "}"
    kind = type(value)
    if dataclasses.is_dataclass(value) and kind.__module__.startswith("tenpo."):
        fields = ", ".join(
            f"{f.name}={_value_text(getattr(value, f.name))}" for f in dataclasses.fields(value)
        )
        return f"{kind.__module__}.{kind.__qualname__}({fields})"
    raise _NoText(repr(value))


@cache
def _code_version() -> str | None:
    """Everything outside the key that shapes a job's SQL: tenpo's source (hashed) and the
    versions of Ibis, sqlglot and DuckDB. None without the source (nothing to tell versions
    apart by): then nothing is stored."""
    import tenpo

    digest = hashlib.sha256()
    root = Path(tenpo.__file__).parent
    sources = sorted(root.rglob("*.py"))
    if len(sources) < 2:
        return None
    for path in sources:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    libs = ",".join(f"{name}={version(name)}" for name in ("ibis-framework", "sqlglot", "duckdb"))
    return f"{digest.hexdigest()};{libs}"


def _placeholders(values: Sequence[Any], counter: list[int]) -> list[Any]:
    out = []
    for v in values:
        if isinstance(v, ibis.Table):
            out.append(ibis.table(v.schema(), name=_PLACEHOLDER.format(counter[0])))
            counter[0] += 1
        else:
            out.append(v)
    return out


def _build(
    job: Callable[..., ibis.Table],
    args: Sequence[Any],
    params: dict[str, Any],
    order_by: Sequence[str],
    days: list[date] | None,
) -> ibis.Table:
    counter = [0]
    a = _placeholders(args, counter)
    names = sorted(k for k in params if k != "days")  # the order of the key's shapes
    kw = dict(zip(names, _placeholders([params[k] for k in names], counter), strict=True))
    if "days" in params:
        kw["days"] = days
    expr = job(*a, **kw)
    return expr.order_by(list(order_by)) if order_by else expr


def _compile(
    con: DuckDBBackend,
    job: Callable[..., ibis.Table],
    args: Sequence[Any],
    params: dict[str, Any],
    order_by: Sequence[str],
    wanted: list[date] | None,
) -> _Template | None:
    if wanted is None:
        expr = _build(job, args, params, order_by, None)
        return _Template(con.compile(expr), expr.schema())
    if not wanted:
        return None  # nothing to shift: rare enough to compile each time
    delta = wanted[0] - _SENTINEL
    sentinel = _build(job, args, params, order_by, [d - delta for d in wanted])
    sql = con.compile(sentinel)
    return _Template(sql, sentinel.schema()) if _dates_only_as_literals(sql) else None


def _dates_only_as_literals(sql: str) -> bool:
    """Whether every sentinel-range year in ``sql`` is inside a date literal the render shifts.

    A date derived from ``days`` but written otherwise (a timestamp or a date as a string, which
    Ibis compiles to ``CAST('1200-01-01 ...' AS ...)``) would keep its sentinel year; such a
    job is compiled per call. A number that merely looks like such a year refuses too, which
    costs speed, never correctness.
    """
    rest = _DATE_LITERAL.sub(lambda m: "" if _near_sentinel(m) else m[0], sql)
    return _SENTINEL_YEAR.search(rest) is None


def _near_sentinel(m: re.Match[str]) -> bool:
    return abs(date(int(m[1]), int(m[2]), int(m[3])) - _SENTINEL) <= _SENTINEL_REACH


def _shift(sql: str, delta: timedelta) -> str:
    def move(m: re.Match[str]) -> str:
        if not _near_sentinel(m):
            return m[0]
        d = date(int(m[1]), int(m[2]), int(m[3])) + delta
        return f"MAKE_DATE({d.year}, {d.month}, {d.day})"

    return _DATE_LITERAL.sub(move, sql)


def _execute(
    con: DuckDBBackend, sql: str, schema: sch.Schema, inputs: Sequence[ibis.Table]
) -> pa.Table:
    raw = con.con
    registered: list[str] = []
    views: list[str] = []
    try:
        for n, table in enumerate(inputs):
            name = _PLACEHOLDER.format(n)
            op = table.op()
            if isinstance(op, ops.InMemoryTable):
                raw.register(name, op.data.to_pyarrow(op.schema))
                registered.append(name)
            else:
                con._register_in_memory_tables(table)
                raw.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {con.compile(table)}')
                views.append(name)
        # A DB-API execute, not ``raw.sql(sql)``: the relation API binds the statement once
        # more to learn its columns (~15 ms of parse and bind for a KPI job's SQL). Fetching
        # Arrow from it copies the rows once, which DuckDB warns about; the results are marts
        # of a few thousand rows per date, so the copy costs less than the bind.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _COPY_WARNING, UserWarning)
            arrow = raw.execute(sql).to_arrow_table()
    finally:
        for name in registered:
            raw.unregister(name)
        for name in views:
            raw.execute(f'DROP VIEW IF EXISTS "{name}"')
    out: pa.Table = DuckDBPyArrowData.convert_table(arrow, schema)
    return out
