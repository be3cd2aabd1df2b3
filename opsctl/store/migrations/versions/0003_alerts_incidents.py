"""Alerts and their notifications; incidents and their notes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENTIFIER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("check_id", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("opened", TIMESTAMP, nullable=False),
        sa.Column("changed", TIMESTAMP, nullable=False),
        sa.Column("cleared", TIMESTAMP, nullable=True),
        sa.Column("acknowledged", TIMESTAMP, nullable=True),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.Column("last_notified", TIMESTAMP, nullable=True),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.Column("escalation", sa.SmallInteger(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("silenced", sa.String(), nullable=True),
        sa.Column("incident_id", IDENTIFIER, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.CheckConstraint("state BETWEEN 0 AND 3", name="ck_alerts_state"),
    )
    op.create_index("ix_alerts_check_id_cleared", "alerts", ["check_id", "cleared"])
    op.create_index("ix_alerts_opened", "alerts", ["opened"])

    op.create_table(
        "notifications",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("alert_id", IDENTIFIER, nullable=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.CheckConstraint(
            "status IN ('sent', 'retry', 'broken', 'failed')", name="ck_notifications_status"
        ),
    )
    op.create_index("ix_notifications_at", "notifications", ["at"])
    op.create_index("ix_notifications_alert_id", "notifications", ["alert_id"])

    op.create_table(
        "incidents",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reporter", sa.String(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("opened", TIMESTAMP, nullable=False),
        sa.Column("acknowledged", TIMESTAMP, nullable=True),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.Column("resolved", TIMESTAMP, nullable=True),
        sa.Column("root_cause", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
        sa.CheckConstraint("source IN ('manual', 'alert')", name="ck_incidents_source"),
        sa.CheckConstraint(
            "acknowledged IS NULL OR acknowledged >= opened", name="ck_incidents_acknowledged"
        ),
        sa.CheckConstraint("resolved IS NULL OR resolved >= opened", name="ck_incidents_resolved"),
    )
    op.create_index("ix_incidents_site_opened", "incidents", ["site", "opened"])
    op.create_index("ix_incidents_resolved", "incidents", ["resolved"])

    op.create_table(
        "incident_notes",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("incident_id", IDENTIFIER, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident_notes"),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name="fk_incident_notes_incident_id_incidents",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_incident_notes_incident_id", "incident_notes", ["incident_id"])


def downgrade() -> None:
    for table in ("incident_notes", "incidents", "notifications", "alerts"):
        op.drop_table(table)
