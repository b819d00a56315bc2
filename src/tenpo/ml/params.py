"""Parameters of the ML jobs: one strict model, read from ``TENPO_ML_*`` when not given."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MlParams"]


class MlParams(BaseSettings):
    """Windows, clustering and target rules of store clustering, targets and benchmarks.

    Environment variables ``TENPO_ML_<FIELD>`` override the defaults; Dagster run config
    overrides both.
    """

    model_config = SettingsConfigDict(env_prefix="TENPO_ML_", extra="forbid", frozen=True)

    window_weeks: int = Field(8, ge=1, le=104, description="Trailing window of the features.")
    min_open_days: int = Field(
        7, ge=1, description="A store needs this many open days in the window to be scored."
    )
    cluster_features: tuple[str, ...] = Field(
        (
            "passersby_per_day",
            "weekend_share",
            "morning_share",
            "lunch_share",
            "evening_share",
        ),
        min_length=1,
        description="Features stores are clustered on: their context, what a store cannot "
        "change (street traffic, weekly and hourly demand shape; floor area and opening hours "
        "are available but off by default: within an industry they told little about a "
        "lever's reach in the back-test and diluted the distances). "
        "The levers (capture, conversion, ATV, UPT) are what peers are compared on, never "
        "what makes them peers: clustering on them makes an underperformer's peers other "
        "underperformers, and its headroom vanish.",
    )
    method: Literal["kmeans", "ward"] = Field(
        "kmeans",
        description="`kmeans`: k-means with `seed` and `n_init` restarts; `ward`: "
        "agglomerative clustering with Ward linkage (deterministic without a seed).",
    )
    k_min: int = Field(2, ge=2, le=50, description="Fewest clusters tried.")
    k_max: int = Field(8, ge=2, le=50, description="Most clusters tried (capped at stores − 1).")
    seed: int = Field(0, ge=0, description="Seed of k-means (results are deterministic).")
    n_init: int = Field(10, ge=1, le=200, description="k-means restarts per k.")
    min_group_stores: int = Field(
        6, ge=3, description="Fewer stores than this in a group: one cluster, no k search."
    )
    min_feature_coverage: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A feature is clustered on only when this share of the group's stores has "
        "it; the others get the group median (flagged as imputed).",
    )
    scope: Literal["tenant", "industry"] = Field(
        "tenant",
        description="`tenant`: stores are clustered with their own tenant's stores of the same "
        "industry; `industry`: with every sharing tenant's stores of the industry.",
    )
    sharing_tenants: tuple[str, ...] = Field(
        (),
        description="Tenants that allow cross-tenant clustering (scope=industry); the others "
        "are always clustered on their own.",
    )
    target_peers: Literal["cluster", "group"] = Field(
        "cluster",
        description="Peers a target is taken from: the store's cluster, or its whole group "
        "(same tenant and industry, or the sharing tenants' industry).",
    )
    target_quantile: float = Field(
        0.75, gt=0, lt=1, description="Target = this quantile of the store's peers (P75)."
    )
    min_peers: int = Field(
        3, ge=2, description="Fewer peers with a value in the cluster: peers = the whole group."
    )
    benchmark_min_stores: int = Field(
        10, ge=1, description="A benchmark cell is published over at least this many stores."
    )
    benchmark_min_tenants: int = Field(2, ge=1, description="... of at least this many tenants.")
    benchmark_min_other_stores: int = Field(
        5,
        ge=1,
        description="... with at least this many stores outside every contributing tenant "
        "(no tenant dominates a cell).",
    )
    benchmark_noise: float = Field(
        0.1,
        gt=0,
        le=10,
        description="Laplace noise on benchmark quantiles, as a share of the cell's "
        "interquartile range (at least that share of 1 % of the median).",
    )
    benchmark_digits: int = Field(
        3, ge=1, le=15, description="Benchmark quantiles are rounded to this many digits."
    )
    benchmark_noise_key: SecretStr = Field(
        SecretStr(""),
        description="Secret keying the benchmark noise (TENPO_ML_BENCHMARK_NOISE_KEY; set one "
        "in production so nobody can replay the noise from guessed inputs).",
    )
    size_bands_m2: tuple[float, ...] = Field(
        (100.0, 300.0, 1000.0),
        description="Floor-area limits (m²) between size bands: S < 100 ≤ M < 300 ≤ L < 1000 ≤ XL.",
    )

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) is below k_min ({self.k_min})")
        from tenpo.ml.features import FEATURES

        unknown = sorted(set(self.cluster_features) - {f.name for f in FEATURES})
        if unknown:
            raise ValueError(f"unknown cluster feature(s) {unknown}")
        if list(self.size_bands_m2) != sorted(set(self.size_bands_m2)):
            raise ValueError("size_bands_m2 must be strictly increasing")
        return self
