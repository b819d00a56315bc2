"""The Spark warehouse (``TENPO_ENGINE=spark``): the same tables, read by Spark from the lake.

Each table is a Spark temporary view over its hive-partitioned Parquet dataset
``tables/{table}/tenant=*/date=*/*.parquet`` — the files the streamer and the DuckDB
warehouse read and write — with the contract schema applied the same way (a column missing
from older files reads null, a table with no file is an empty table of the right schema).
The row position that orders duplicates is Spark's ``_metadata.file_path`` and
``_metadata.row_index``, so :meth:`BaseWarehouse.table` keeps the same row of a set of
duplicates as DuckDB does. The KPI jobs run unchanged through Ibis's PySpark backend.

Spark runs in process in local mode (``TENPO_SPARK_MASTER=local[*]``, the default) or on a
cluster (``spark://…``, ``yarn``, ``k8s://…``), which must then reach the lake: a shared
folder, or ``s3a://`` with the ``hadoop-aws`` jars and credentials in the Spark config.
Needs the ``spark`` extra (PySpark) and Java 17.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from tenpo.core.errors import BadInput, ConfigError, LakeError
from tenpo.core.settings import Settings
from tenpo.lake.base import Lake
from tenpo.lake.keys import table_prefix
from tenpo.warehouse.catalog import (
    FILE_COLUMN,
    PART_DATE,
    PART_TENANT,
    ROW_COLUMN,
    TABLES,
    BaseWarehouse,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType

__all__ = ["SparkWarehouse", "spark_lake_url", "spark_session", "spark_type"]

log = logging.getLogger(__name__)

# Session settings tenpo relies on: instants in UTC (as DuckDB's session), partition values
# as written (`tenant=0042` stays the string "0042"; dates are cast explicitly).
_SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
# In local mode: no web UI, and few shuffle partitions (Spark's 200 cost seconds per query
# on small data; adaptive execution still splits big shuffles).
_LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
}


def spark_session(settings: Settings) -> SparkSession:
    """The process's Spark session on ``settings.spark_master`` (created on first use).

    ``ConfigError`` when PySpark is not installed (extra ``spark``) or Spark cannot start
    (no Java 17, a master that does not answer).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "TENPO_ENGINE=spark needs PySpark: install the spark extra "
            "(uv sync --extra spark) and Java 17"
        ) from exc
    master = settings.spark_master
    builder = SparkSession.builder.master(master).appName("tenpo")
    conf = {
        **_SESSION_CONF,
        **(_LOCAL_CONF if master.startswith("local") else {}),
        # Spark's default 1 GiB driver heap runs out at 100 stores × 30 days in local mode.
        "spark.driver.memory": settings.spark_driver_memory,
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # JVM start-up fails with assorted Java/Py4J errors
        raise ConfigError(f"cannot start Spark on master {master!r}: {exc}") from exc
    # getOrCreate may return a session started elsewhere: its SQL settings must be ours.
    for key, value in _SESSION_CONF.items():
        if key.startswith("spark.sql."):
            session.conf.set(key, value)
    return session


def spark_lake_url(lake: Lake, key: str) -> str:
    """The URL under which Spark (Hadoop filesystems) reads lake ``key``.

    A local folder is ``file://``; ``s3://`` becomes ``s3a://`` (Hadoop's S3 connector).
    """
    path = lake.path(key)
    if "://" not in path:
        return "file://" + path
    if path.startswith("s3://"):
        return "s3a://" + path[len("s3://") :]
    return path


def spark_type(arrow_type: pa.DataType) -> DataType:
    """The Spark SQL type for an Arrow type of the table schemas; ``ConfigError`` if unmapped."""
    from pyspark.sql import types as T

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return T.StringType()
    if pa.types.is_date32(arrow_type):
        return T.DateType()
    if pa.types.is_timestamp(arrow_type):
        return T.TimestampType() if arrow_type.tz else T.TimestampNTZType()
    if pa.types.is_decimal(arrow_type):
        return T.DecimalType(arrow_type.precision, arrow_type.scale)
    simple: dict[pa.DataType, DataType] = {
        pa.int32(): T.IntegerType(),
        pa.int64(): T.LongType(),
        pa.float64(): T.DoubleType(),
        pa.bool_(): T.BooleanType(),
    }
    if arrow_type in simple:
        return simple[arrow_type]
    raise ConfigError(f"no Spark type for Arrow type {arrow_type}")


def _spark_errors() -> tuple[type[BaseException], ...]:
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JJavaError)


class SparkWarehouse(BaseWarehouse):
    """The warehouse on Spark: every table a temporary view of ``session`` over the lake.

    Views are named per warehouse, so several warehouses may share one session; ``close``
    drops them and leaves the session running (a JVM start costs seconds).
    """

    engine = "spark"

    def __init__(self, lake: Lake, session: SparkSession) -> None:
        super().__init__(lake)
        self._session = session
        self._con = ibis.pyspark.connect(session)
        self._suffix = uuid.uuid4().hex[:8]
        self._views: set[str] = set()

    @property
    def con(self) -> Any:
        """The Ibis PySpark backend (for expressions spanning several tables)."""
        return self._con

    @property
    def session(self) -> SparkSession:
        """The Spark session the views live in."""
        return self._session

    def to_arrow(self, expr: ibis.Table) -> pa.Table:
        """Execute an expression of this warehouse on Spark into an Arrow table."""
        table = expr.as_table()
        try:
            # Arrow straight from Spark (Ibis's own to_pyarrow goes through pandas); the hook
            # registers the expression's in-memory tables (store offsets, staff) first.
            self._con._run_pre_execute_hooks(table)
            result = _to_arrow(self._session.sql(self._con.compile(table)))
        except _spark_errors() as exc:
            raise LakeError(f"warehouse read failed on Spark: {exc}") from exc
        return result

    def sql(self, query: str) -> pa.Table:
        """Run a Spark SQL SELECT over the tables (by name, raw ones deduplicated) into Arrow."""
        errors = _spark_errors()
        for name in TABLES:
            body = self._con.compile(self.table(name))
            try:
                self._session.sql(body).createOrReplaceTempView(name)
            except errors as exc:
                raise LakeError(f"cannot read table {name} on Spark: {exc}") from exc
            self._views.add(name)
        try:
            return _to_arrow(self._session.sql(query))
        except errors as exc:
            raise BadInput(f"warehouse query failed: {exc}") from exc

    def close(self) -> None:
        """Drop this warehouse's views (the session keeps running for the next one)."""
        for view in self._views:
            try:
                self._session.catalog.dropTempView(view)
            except _spark_errors():  # a stopped session: nothing left to drop
                log.debug("could not drop Spark view %s", view, exc_info=True)
        self._views.clear()

    def _scan(self, name: str, schema: pa.Schema) -> ibis.Table:
        """A fresh view ``_scan_{name}_{suffix}`` (Spark lists the files when it is made)."""
        from pyspark.sql import functions as F

        view = f"_scan_{name}_{self._suffix}"
        extra = {
            PART_TENANT: spark_type(pa.string()),
            PART_DATE: spark_type(pa.date32()),
            FILE_COLUMN: spark_type(pa.string()),
            ROW_COLUMN: spark_type(pa.int64()),
        }
        try:
            if self._has_files(name):
                frame = self._read(name, schema)
                cols = [F.col(f.name) for f in schema]
                cols += [
                    F.col("tenant").cast(extra[PART_TENANT]).alias(PART_TENANT),
                    F.to_date(F.col("date")).alias(PART_DATE),
                    F.col("_metadata.file_path").alias(FILE_COLUMN),
                    F.col("_metadata.row_index").cast(extra[ROW_COLUMN]).alias(ROW_COLUMN),
                ]
                frame = frame.select(*cols)
            else:
                frame = self._empty(schema, extra)
            frame.createOrReplaceTempView(view)
        except _spark_errors() as exc:
            raise LakeError(f"cannot read table {name} on Spark: {exc}") from exc
        self._views.add(view)
        log.debug("spark view %s over %s", view, name)
        return self._con.table(view)

    def _read(self, name: str, schema: pa.Schema) -> DataFrame:
        """The table's parts read with the contract schema (a column absent from a file reads
        null) and the partition keys as strings; no schema inference pass over the files."""
        from pyspark.sql import types as T

        fields = [T.StructField(f.name, spark_type(f.type)) for f in schema]
        fields += [T.StructField("tenant", T.StringType()), T.StructField("date", T.StringType())]
        base = spark_lake_url(self.lake, table_prefix(name)).rstrip("/")
        return (
            self._session.read.schema(T.StructType(fields))
            .option("basePath", base)
            .option("pathGlobFilter", "*.parquet")
            .parquet(base)
        )

    def _empty(self, schema: pa.Schema, extra: dict[str, DataType]) -> DataFrame:
        from pyspark.sql import types as T

        fields = [T.StructField(f.name, spark_type(f.type)) for f in schema]
        fields += [T.StructField(n, t) for n, t in extra.items()]
        return self._session.createDataFrame([], T.StructType(fields))


def _to_arrow(frame: DataFrame) -> pa.Table:
    """``frame`` collected as Arrow; Spark instants (``TimestampType``) as UTC timestamps."""
    from pyspark.sql import types as T

    if hasattr(frame, "toArrow"):  # PySpark 4
        table: pa.Table = frame.toArrow()
    else:
        table = pa.Table.from_pandas(frame.toPandas(), preserve_index=False)
    fields = []
    for field, spark_field in zip(table.schema, frame.schema.fields, strict=True):
        if isinstance(spark_field.dataType, T.TimestampType) and pa.types.is_timestamp(field.type):
            # The session's zone is UTC: the values are UTC instants whatever the label.
            field = field.with_type(pa.timestamp("us", tz="UTC"))
        fields.append(field)
    return table.cast(pa.schema(fields))
