"""The simulator's one configuration object."""

from __future__ import annotations

from datetime import date
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Industry = Literal["apparel", "drugstore", "supermarket", "cafe"]
INDUSTRIES: tuple[Industry, ...] = ("apparel", "drugstore", "supermarket", "cafe")


class SimConfig(BaseModel):
    """What to simulate. Same config (seed included) → byte-identical output."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    seed: int = Field(7, ge=0, description="Seed of every random draw.")
    tenants: int = Field(2, ge=1, le=50, description="Number of tenants (retail chains).")
    stores: int | None = Field(
        None, ge=1, le=5000, description="Total stores, spread over tenants as evenly as possible."
    )
    stores_per_tenant: int | None = Field(
        None, ge=1, le=1000, description="Stores per tenant (instead of `stores`)."
    )
    days: int = Field(14, ge=1, le=730, description="Business dates to simulate.")
    start_date: date = Field(
        date(2026, 10, 5),
        ge=date(1901, 1, 1),
        le=date(2996, 12, 31),
        description="First business date; its history (registers, repeat visitors) reaches a"
        " year back and `days` two years on, all inside the business years 1900-2999.",
    )
    industries: tuple[Industry, ...] = Field(
        INDUSTRIES,
        min_length=1,
        strict=False,  # accept a list too
        description="Industries stores are drawn from (round robin).",
    )
    traffic_scale: float = Field(
        1.0, gt=0, le=10, description="Multiplies every store's street traffic (and so volumes)."
    )
    rgb_camera_share: float = Field(
        0.4, ge=0, le=1, description="Share of stores with an RGB entrance camera (≥1 per tenant)."
    )
    tof_camera_share: float = Field(
        0.3, ge=0, le=1, description="Share of stores with a ToF camera."
    )
    one_minute_counter_share: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Share of people counters reporting 1-minute intervals (else 15).",
    )
    regular_share: float = Field(
        0.35,
        ge=0,
        le=1,
        description="Base probability that a camera-store visitor is one of the tenant's regulars "
        "(scaled by archetype); regulars return, so this drives repeat visitors.",
    )
    cross_store_share: float = Field(
        0.1, ge=0, le=1, description="Share of regular visits made to another store of the tenant."
    )
    customer_pool_factor: float = Field(
        8.0, gt=0, description="Regulars per store = factor × expected daily regular visits."
    )
    staff_per_store: int = Field(3, ge=0, le=30, description="Enrolled staff per camera store.")
    return_rate: float = Field(0.015, ge=0, le=0.2, description="Return receipts per sale receipt.")
    void_rate: float = Field(0.005, ge=0, le=0.2, description="Void receipts per sale receipt.")
    discount_rate: float = Field(0.06, ge=0, le=1, description="Share of sale lines discounted.")
    move_register: bool = Field(
        True,
        description="With ≥7 days, move one vendor-A register to another store mid-simulation "
        "(two master rows with validity dates).",
    )
    device_gap_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability that a people counter is offline for a while on a store-day "
        "(its intervals are missing; truth keeps the true visitors and `visitors_counted`).",
    )
    yearly_amplitude: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Log amplitude of a yearly demand cycle (peak at the year-end sales, trough "
        "in February); 0 leaves demand flat over the year.",
    )
    outlier_rate: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Store-day simulator only: share of store-days with a one-off demand event "
        "(a local festival ×1.8-2.5 or a disruption ×0.3-0.5), true data not errors.",
    )
    outage_rate: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Store-day simulator only: share of store-days whose data never reached "
        "tenpo (no POS and no counter rows in the marts of `store_day_marts`).",
    )
    initiatives_per_tenant: int = Field(
        1,
        ge=0,
        le=200,
        description="Initiatives planted per tenant (known effect on one KPI at 1-3 stores; "
        "`truth/initiatives.csv`); none when fewer than 14 days are simulated.",
    )
    dst_store_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of each tenant's stores in a zone with daylight saving time (in turn "
        "`dst_timezones`); the others are in Asia/Tokyo. Every timestamp carries the offset in "
        "force at that instant; a local date has 23, 24 or 25 hours.",
    )
    dst_timezones: tuple[str, ...] = Field(
        ("Europe/London", "America/New_York", "Pacific/Auckland"),
        min_length=1,
        description="Zones of the `dst_store_share` stores, assigned in turn.",
    )
    quirk_rate: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Share of vendor-A fields written with full-width digits or thousands "
        "separators (both allowed by FORMATS.md).",
    )

    @model_validator(mode="after")
    def _one_store_count(self) -> Self:
        if self.stores is not None and self.stores_per_tenant is not None:
            raise ValueError("give either `stores` or `stores_per_tenant`, not both")
        if self.stores is not None and self.stores < self.tenants:
            raise ValueError(
                f"`stores` ({self.stores}) must be at least `tenants` ({self.tenants})"
            )
        if len(set(self.industries)) != len(self.industries):
            raise ValueError("`industries` lists an industry twice")
        return self

    def store_counts(self) -> list[int]:
        """Stores of each tenant, in tenant order (default: 5 per tenant)."""
        if self.stores is None:
            return [self.stores_per_tenant or 5] * self.tenants
        base, extra = divmod(self.stores, self.tenants)
        return [base + (1 if i < extra else 0) for i in range(self.tenants)]
