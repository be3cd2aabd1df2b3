"""The initial schema: check results, metric samples, check status and state changes.

Revision ID: 0001
Revises:
Create Date: 2026-05-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from models.py: a migration is a snapshot, and must keep
# creating this schema after the models have moved on.
IDENTIFIER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def _state_checks(table: str, *columns: str) -> list[sa.CheckConstraint]:
    checks = [sa.CheckConstraint(f"{c} BETWEEN 0 AND 3", name=f"ck_{table}_{c}") for c in columns]
    checks.append(
        sa.CheckConstraint("state_type IN ('soft', 'hard')", name=f"ck_{table}_state_type")
    )
    return checks


def upgrade() -> None:
    op.create_table(
        "check_results",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("check_id", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("state_type", sa.String(4), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("started", TIMESTAMP, nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("items", DOCUMENT, nullable=False),
        sa.Column("details", DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_check_results"),
        *_state_checks("check_results", "state"),
    )
    op.create_index("ix_check_results_check_id_started", "check_results", ["check_id", "started"])
    op.create_index("ix_check_results_target_started", "check_results", ["target", "started"])
    op.create_index("ix_check_results_site_started", "check_results", ["site", "started"])

    op.create_table(
        "metric_samples",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("result_id", IDENTIFIER, nullable=False),
        sa.Column("check_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("labels", DOCUMENT, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metric_samples"),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["check_results.id"],
            name="fk_metric_samples_result_id_check_results",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_metric_samples_check_id_name_at", "metric_samples", ["check_id", "name", "at"]
    )
    op.create_index("ix_metric_samples_result_id", "metric_samples", ["result_id"])

    op.create_table(
        "check_status",
        sa.Column("check_id", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("state_type", sa.String(4), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.Column("last_hard_state", sa.SmallInteger(), nullable=False),
        sa.Column("last_hard_change", TIMESTAMP, nullable=False),
        sa.Column("last_checked", TIMESTAMP, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("last_result_id", IDENTIFIER, nullable=True),
        sa.PrimaryKeyConstraint("check_id", name="pk_check_status"),
        *_state_checks("check_status", "state", "last_hard_state"),
    )

    op.create_table(
        "state_changes",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("check_id", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("from_state", sa.SmallInteger(), nullable=True),
        sa.Column("to_state", sa.SmallInteger(), nullable=False),
        sa.Column("state_type", sa.String(4), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_state_changes"),
        *_state_checks("state_changes", "from_state", "to_state"),
    )
    op.create_index("ix_state_changes_check_id_at", "state_changes", ["check_id", "at"])
    op.create_index("ix_state_changes_at", "state_changes", ["at"])


def downgrade() -> None:
    op.drop_table("state_changes")
    op.drop_table("check_status")
    op.drop_table("metric_samples")
    op.drop_table("check_results")
