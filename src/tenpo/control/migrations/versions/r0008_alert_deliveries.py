"""Alert deliveries (issue 19): which alert ids a rule's webhook has already received, kept
in the control plane so that a dropped and rebuilt datamart (whose ``dm_alerts`` is derived
and raised again under the same ids) does not send them a second time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "alert_deliveries",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "alert_id", name="pk_alert_deliveries"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_alert_deliveries_tenant_id_tenants"
        ),
    )


def downgrade() -> None:
    op.drop_table("alert_deliveries")
