"""Initiatives (施策): measures a tenant runs at some of its stores for a period, whose effect
the pipeline measures against control stores (issue 15).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "initiatives",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("kpi", sa.String(32), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_initiatives"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_initiatives_tenant_id_tenants"
        ),
    )
    op.create_table(
        "initiative_stores",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("initiative_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "initiative_id", "store_id", name="pk_initiative_stores"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "initiative_id"],
            ["initiatives.tenant_id", "initiatives.id"],
            name="fk_initiative_stores_tenant_id_initiative_id_initiatives",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "store_id"],
            ["stores.tenant_id", "stores.id"],
            name="fk_initiative_stores_tenant_id_store_id_stores",
        ),
    )


def downgrade() -> None:
    op.drop_table("initiative_stores")
    op.drop_table("initiatives")
