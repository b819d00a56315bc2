"""The one typed settings object.

Values come, highest priority first, from keyword arguments, ``TENPO_*`` environment
variables, a ``tenpo.toml`` in the working directory (or the file named by
``TENPO_CONFIG``), then the defaults below. Nothing reads settings at import time: call
:func:`get_settings` (cached) or build a ``Settings`` explicitly and pass it down.
"""

from __future__ import annotations

import os
from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEV_SESSION_SECRET = "tenpo-development-session-secret-change-me"
"""The placeholder session secret; the API refuses to start with it in production."""


class Settings(BaseSettings):
    """Everything configurable in tenpo; every URL defaults to a file under ``data_dir``."""

    model_config = SettingsConfigDict(
        env_prefix="TENPO_", extra="forbid", toml_file="tenpo.toml", validate_default=True
    )

    data_dir: Path = Field(Path(".tenpo"), description="Root of every embedded store.")
    lake_url: str | None = Field(
        None, description="Datalake root: a folder, s3://bucket/prefix or gs://bucket/prefix."
    )
    control_url: str | None = Field(None, description="SQLAlchemy URL of the control plane.")
    datamart_url: str | None = Field(None, description="SQLAlchemy URL of the datamart.")
    bus: Literal["sqlite", "nats"] = Field("sqlite", description="Event bus implementation.")
    bus_url: str | None = Field(None, description="SQLite outbox file of the embedded bus.")
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server for bus=nats.")
    bus_stream: str = Field("tenpo", description="JetStream stream name (and subject prefix).")
    bus_ack_wait_s: float = Field(30.0, gt=0, description="Redelivery after this many seconds.")
    warehouse_path: Path | None = Field(None, description="DuckDB file for analysts' views.")
    engine: Literal["duckdb", "spark"] = Field(
        "duckdb",
        description="Query engine of the warehouse and so of every mart asset: DuckDB in "
        "process, or Spark (extra `spark`, Java 17) reading the same Parquet in the lake.",
    )
    dagster_storage_url: str | None = Field(
        None,
        description="PostgreSQL URL of Dagster's run, event-log and schedule storage "
        "(dagster-postgres); default: SQLite files under {data_dir}/dagster.",
    )
    spark_master: str = Field(
        "local[*]",
        min_length=1,
        description="Spark master URL for engine=spark: local[N] (in process) or a cluster "
        "(spark://host:7077, yarn, k8s://...).",
    )
    spark_driver_memory: str = Field(
        "4g",
        pattern=r"^[1-9][0-9]*[kmgt]$",
        description="Heap of the Spark driver JVM (spark.driver.memory, e.g. 4g); in local "
        "mode the executors run inside it. Takes effect when tenpo starts the JVM.",
    )
    duckdb_memory_limit: str | None = Field(
        None,
        pattern=r"^[1-9][0-9]*(\.[0-9]+)?\s?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory_limit for the warehouse (e.g. 1GB): past it, sorts, joins "
        "and aggregates spill to a temporary folder under data_dir. None keeps DuckDB's default "
        "(80 % of the machine's RAM). A mart's DuckDB queries are the largest part of the marts "
        "stage's peak RSS (at 700 stores × 3 days: 1.8 GiB unlimited, 1.4 GiB at 1GB).",
    )
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(8001, ge=1, le=65535)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_max_kpi_days: int = Field(
        366, gt=0, description="Longest date range, in days, one KPI request may ask for."
    )
    api_rate_per_s: float = Field(
        20.0, ge=0, description="Requests per second per API key or user (0: no limit)."
    )
    api_rate_burst: int = Field(100, gt=0, description="Requests a key may burst at once.")
    operator_tenant: str | None = Field(
        None,
        description="Tenant whose admin keys manage every tenant (create tenants, ?tenant=).",
    )
    session_secret: str = Field(
        DEV_SESSION_SECRET,
        min_length=16,
        description="HMAC key signing dashboard session cookies; must be changed in production.",
    )
    session_ttl_s: int = Field(8 * 3600, gt=0, description="Lifetime of a dashboard session.")
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Addresses or CIDR networks of reverse proxies whose X-Forwarded-For the "
        "read API believes (login limits per client); empty: the peer address is the client. "
        "Env: comma-separated.",
    )
    auth_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long a verified API key is trusted without a control-plane read; a "
        "key revoked in another process is refused after at most this long (0: no cache).",
    )
    gateway_commit_window_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="How long a gateway group-commit round waits for more requests before "
        "its one sync (each request is answered after the round that made it durable); 0: "
        "none, the sync and publish of the rounds before gather the next one.",
    )
    alert_webhook_allow_private: bool = Field(
        False,
        description="Let alert-rule webhooks target non-public addresses (loopback, RFC 1918, "
        "link-local and cloud metadata, unique-local IPv6, or a host resolving to one); off, "
        "such a URL is a 422 when the rule is stored and is not delivered to (checked again "
        "after DNS resolution at each attempt). For receivers on a private network only.",
    )
    max_body_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest accepted upload.")
    http_head_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="The gateway's and the API's deadline for a request's head (request line and "
        "headers), counted from the connection opening or the previous response: a connection "
        "that trickles or sends nothing gets a 408 and is closed.",
    )
    http_body_idle_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Longest pause allowed between two pieces of a request body (a slow uplink "
        "keeps going; a stalled sender gets a 408, and nothing of its request is landed).",
    )
    http_body_min_rate_bytes_s: float = Field(
        256.0,
        ge=0,
        description="Lowest average rate of a request body once it has been coming for longer "
        "than http_body_idle_timeout_s (a sender trickling a byte before each idle limit gets a "
        "408); 0: no minimum.",
    )
    pos_max_body_bytes: int = Field(
        100 * 1024 * 1024, gt=0, description="Largest accepted POS sales or master upload."
    )
    vendor_mappings_dir: Path | None = Field(
        None,
        description="Folder of POS vendor mappings (*.toml); default {data_dir}/vendors.",
    )
    streamer_state_url: str | None = Field(
        None, description="SQLAlchemy URL of the streamer's load ledger (default: a SQLite file)."
    )
    streamer_batch_objects: int = Field(200, gt=0, description="Objects loaded per batch.")
    streamer_batch_rows: int = Field(
        1_000_000,
        gt=0,
        description="Parsed rows after which a batch's objects are written and committed (the"
        " rest of the batch follows in another commit): bounds memory when objects are big.",
    )
    streamer_lease_s: float = Field(
        60.0,
        gt=0,
        description="Lease of a streamer on the ledger, renewed every quarter of it: a streamer"
        " silent for longer is taken for dead and its uncommitted parts are reclaimed by the"
        " others (keep it above the longest batch step; hosts' clocks must agree within it).",
    )
    mqtt_enabled: bool | None = Field(
        None, description="Run the MQTT subscriber in `serve all` (None: when the broker answers)."
    )
    mqtt_host: str = Field("127.0.0.1", description="MQTT broker host (Mosquitto).")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port.")
    mqtt_username: str | None = Field(None, description="Broker user of the IoT subscriber.")
    mqtt_password: str | None = Field(None, description="Broker password of the IoT subscriber.")
    mqtt_client_id: str = Field(
        "tenpo-iot", min_length=1, description="Client id: names the broker's persistent session."
    )
    mqtt_topic_prefix: str = Field(
        "tenpo",
        min_length=1,
        description="First topic level: {prefix}/{tenant}/devices/{id}/events.",
    )
    mqtt_session_expiry_s: int = Field(
        7 * 24 * 3600, ge=0, description="How long the broker keeps the session while we are down."
    )
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT version; 3.1.1 brokers cap unacked messages (small batches)."
    )
    mqtt_batch_messages: int = Field(1000, gt=0, description="Messages per landing object.")
    mqtt_batch_seconds: float = Field(1.0, gt=0, description="Longest wait before landing a batch.")
    mqtt_max_message_bytes: int = Field(
        256 * 1024, gt=0, description="Larger MQTT messages are quarantined."
    )
    video_fps: int = Field(15, ge=1, le=60, description="Recorder output frame rate.")
    video_chunk_seconds: float = Field(300.0, gt=0, description="Length of a recorded chunk.")
    video_retention_days: int = Field(30, gt=0, description="Recorded chunks kept this long.")
    video_detect_every: int = Field(4, ge=1, description="Analyzer: detect faces every N frames.")
    video_max_chunk_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Largest video chunk the gateway accepts."
    )
    feature_store: Literal["faiss", "pgvector"] = Field("faiss", description="Feature DB.")
    feature_dir: Path | None = Field(None, description="FAISS index files (default data_dir).")
    feature_pg_url: str | None = Field(
        None, description="PostgreSQL URL for feature_store=pgvector."
    )
    feature_match_threshold: float = Field(
        0.6, gt=0, lt=4, description="Largest face-vector distance that is the same person."
    )
    feature_retention_days: int = Field(180, gt=0, description="Face vectors expire after this.")
    feature_ann_min_vectors: int = Field(
        50_000, ge=1, description="From this many vectors per tenant, FAISS searches use HNSW."
    )
    default_timezone: str = "Asia/Tokyo"
    log_level: str = "INFO"
    environment: Literal["development", "production"] = "development"
    # KPI jobs (tenpo.jobs): repeat visitors and staff exclusion.
    repeat_window_days: int = Field(
        180, ge=1, description="A visitor is a repeat visitor after a visit this many days back."
    )
    staff_file: Path | None = Field(
        None,
        description="Fallback to enrolment by photo (tenpo admin staff enroll): CSV of staff"
        " PersonIDs (columns tenant_id, person_id) excluded by the visits job.",
    )
    staff_min_visit_hours: float | None = Field(
        4.0, gt=0, description="One visit this long makes a person staff that day (None: off)."
    )
    staff_min_days: int | None = Field(
        None, ge=1, description="Seen on this many of the last staff_days_window days: staff."
    )
    staff_days_window: int = Field(7, ge=1, description="Days looked back by staff_min_days.")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        # TENPO_TRUSTED_PROXIES=10.0.0.1,10.1.0.0/16 (a list from TOML or code passes as is).
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        for entry in value:
            ip_network(str(entry), strict=False)  # ValueError names the bad entry
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("TENPO_CONFIG", "tenpo.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    # Resolved locations: everything defaults to a file under data_dir.
    @property
    def lake_root(self) -> str:
        return self.lake_url or str((self.data_dir / "lake").resolve())

    @property
    def control_db_url(self) -> str:
        return self.control_url or f"sqlite:///{(self.data_dir / 'control.db').resolve()}"

    @property
    def datamart_db_url(self) -> str:
        return self.datamart_url or f"sqlite:///{(self.data_dir / 'datamart.db').resolve()}"

    @property
    def streamer_db_url(self) -> str:
        return self.streamer_state_url or f"sqlite:///{(self.data_dir / 'streamer.db').resolve()}"

    @property
    def bus_path(self) -> Path:
        return Path(self.bus_url) if self.bus_url else self.data_dir / "bus.db"

    @property
    def warehouse_file(self) -> Path:
        return self.warehouse_path or self.data_dir / "warehouse.duckdb"

    @property
    def feature_path(self) -> Path:
        return self.feature_dir or self.data_dir / "features"

    @property
    def dagster_home(self) -> Path:
        return (self.data_dir / "dagster").resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use."""
    return Settings()
