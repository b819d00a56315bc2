"""Alert acknowledgements (issue 19): who acknowledged which alert id and when, kept in the
control plane so that a dropped and rebuilt datamart (whose ``dm_alerts`` is derived and
raised again under the same ids) shows them acknowledged still.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "alert_acks",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "alert_id", name="pk_alert_acks"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_alert_acks_tenant_id_tenants"
        ),
    )


def downgrade() -> None:
    op.drop_table("alert_acks")
