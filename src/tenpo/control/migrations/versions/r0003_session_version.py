"""Users get a session version: every session token names it, and logout, a password change
or removing the user bumps it, so older tokens stop working (issue 11).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    # SQLite drops a column only by copying the table (batch mode); PostgreSQL drops it.
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
