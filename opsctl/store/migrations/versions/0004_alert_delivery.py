"""Escalation timed from the first notice; notifications tied to incidents and sites with
their reason; the SLA warnings already given per incident.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENTIFIER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("announced", TIMESTAMP, nullable=True))
    op.execute("UPDATE alerts SET announced = opened WHERE notifications > 0 AND silenced IS NULL")
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("incident_id", IDENTIFIER, nullable=True))
        batch.add_column(sa.Column("site", sa.String(), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(), nullable=True))
    op.create_index("ix_notifications_incident_id", "notifications", ["incident_id"])
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("sla_warned", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("sla_warned")
    op.drop_index("ix_notifications_incident_id", "notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("reason")
        batch.drop_column("site")
        batch.drop_column("incident_id")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("announced")
