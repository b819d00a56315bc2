"""Budgets: a chain's own daily net-sales budget per store (issue 15), shown beside the
actual sales and tenpo's target.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Money: NUMERIC(12, 2) on PostgreSQL; SQLite keeps the decimal's text (ExactDecimal).
    money = sa.Numeric(12, 2).with_variant(sa.String(32), "sqlite")
    op.create_table(
        "budgets",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("net_sales", money, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "store_id", "business_date", name="pk_budgets"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "store_id"],
            ["stores.tenant_id", "stores.id"],
            name="fk_budgets_tenant_id_store_id_stores",
        ),
    )


def downgrade() -> None:
    op.drop_table("budgets")
