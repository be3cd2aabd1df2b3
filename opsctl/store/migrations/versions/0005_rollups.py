"""Metric rollups: each series' samples summed up per UTC hour and per UTC day.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "metric_rollups",
        sa.Column("check_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("labels_key", sa.Text(), nullable=False),
        sa.Column("labels", DOCUMENT, nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("resolution", sa.String(4), nullable=False),
        sa.Column("bucket", TIMESTAMP, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("last", sa.Float(), nullable=False),
        sa.Column("last_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint(
            "check_id", "name", "labels_key", "resolution", "bucket", name="pk_metric_rollups"
        ),
        sa.CheckConstraint("resolution IN ('hour', 'day')", name="ck_metric_rollups_resolution"),
        sa.CheckConstraint("count > 0", name="ck_metric_rollups_count"),
    )
    op.create_index(
        "ix_metric_rollups_check_id_name_resolution_bucket",
        "metric_rollups",
        ["check_id", "name", "resolution", "bucket"],
    )
    op.create_index(
        "ix_metric_rollups_resolution_bucket", "metric_rollups", ["resolution", "bucket"]
    )


def downgrade() -> None:
    op.drop_table("metric_rollups")
