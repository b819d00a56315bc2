"""Ibis' BigQuery compiler with an exact ``median`` (the KPI jobs' dwell-time median).

Ibis compiles ``x.median()`` to an exact median on DuckDB (``QUANTILE_CONT(x, 0.5)``) and Spark
(``PERCENTILE(x, 0.5)``), both the mean of the two middle values for an even count, but has no
rule for BigQuery, which lacks an exact median aggregate. The rule here spells the same value
from the sorted values: ``ARRAY_AGG(x IGNORE NULLS ORDER BY x)`` at offsets ``(n - 1) / 2`` and
``n / 2`` (``n`` the non-null count), their sum as FLOAT64 halved; null for a group without
values. It is the expression the jobs used to build themselves (a sorted collect and two
indexes), which every engine paid for; on DuckDB ``QUANTILE_CONT`` costs a third of it.

Importing this module registers the rule (idempotent); ``tenpo.jobs`` imports it, so any
BigQuery compile of a job has it. It only fills a rule Ibis declares unsupported.
"""

from __future__ import annotations

from typing import Any

import ibis.expr.datatypes as dt
import sqlglot.expressions as sge
from ibis.backends.sql.compilers.base import NULL
from ibis.backends.sql.compilers.bigquery import BigQueryCompiler

__all__ = ["visit_median"]


def visit_median(self: BigQueryCompiler, op: Any, *, arg: Any, where: Any) -> Any:
    """The exact median of ``arg`` (over the rows where ``where`` holds): module docstring."""
    if where is not None:
        arg = self.if_(where, arg, NULL)
    values = self.f.array_agg(
        sge.IgnoreNulls(
            this=sge.Order(this=arg, expressions=[sge.Ordered(this=arg, nulls_first=True)])
        )
    )
    n = self.f.count(arg)
    # Parenthesised: sqlglot's transpile of DIV(a - 1, 2) drops the precedence (a - 1 // 2).
    low = values[self.f.safe_offset(self.f.div(sge.Paren(this=n - 1), 2))]
    high = values[self.f.safe_offset(self.f.div(n, 2))]
    return sge.Div(this=self.cast(low + high, dt.float64), expression=sge.convert(2))


BigQueryCompiler.visit_Median = visit_median
