"""The server's tables: API tokens, agent batches and agents, the dispenser fleet, the
scheduler's lease and its job runs; agent samples have no result.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENTIFIER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Samples pushed by agents belong to no check result.
    with op.batch_alter_table("metric_samples") as batch:
        batch.alter_column("result_id", existing_type=IDENTIFIER, nullable=True)

    op.create_table(
        "api_tokens",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("last_used", TIMESTAMP, nullable=True),
        sa.Column("revoked", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.CheckConstraint("scope IN ('agent', 'vendor')", name="ck_api_tokens_scope"),
    )

    op.create_table(
        "ingest_batches",
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("received", TIMESTAMP, nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("results", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("agent", "batch_id", name="pk_ingest_batches"),
    )
    op.create_index("ix_ingest_batches_received", "ingest_batches", ["received"])

    op.create_table(
        "agents",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("interval", sa.Float(), nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.Column("last_push", TIMESTAMP, nullable=False),
        sa.Column("last_sent", TIMESTAMP, nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("facts", DOCUMENT, nullable=False),
        sa.Column("pushes", sa.BigInteger(), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("spooled", sa.BigInteger(), nullable=False),
        sa.Column("dropped_batches", sa.BigInteger(), nullable=False),
        sa.Column("dropped_samples", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_agents"),
    )

    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(), nullable=False),
        sa.Column("vendor", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("registered", sa.Boolean(), nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=True),
        sa.Column("last_heartbeat", TIMESTAMP, nullable=True),
        sa.Column("last_reported", TIMESTAMP, nullable=True),
        sa.Column("heartbeats", sa.BigInteger(), nullable=False),
        sa.Column("reported_status", sa.String(), nullable=False),
        sa.Column("fault_code", sa.String(), nullable=True),
        sa.Column("fault_message", sa.Text(), nullable=True),
        sa.Column("stock", DOCUMENT, nullable=False),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("door", sa.String(), nullable=True),
        sa.Column("firmware", sa.String(), nullable=True),
        sa.Column("interval", sa.Float(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("status_since", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_devices"),
    )
    op.create_index("ix_devices_vendor_region", "devices", ["vendor", "region"])
    op.create_index("ix_devices_site", "devices", ["site"])
    op.create_index("ix_devices_status", "devices", ["status"])

    op.create_table(
        "device_flips",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(), nullable=False),
        sa.Column("vendor", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("from_status", sa.String(), nullable=True),
        sa.Column("to_status", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_flips"),
    )
    op.create_index("ix_device_flips_device_id_at", "device_flips", ["device_id", "at"])
    op.create_index("ix_device_flips_at", "device_flips", ["at"])

    op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("acquired", TIMESTAMP, nullable=False),
        sa.Column("renewed", TIMESTAMP, nullable=False),
        sa.Column("expires", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_scheduler_lease"),
    )

    op.create_table(
        "job_runs",
        sa.Column("id", IDENTIFIER, autoincrement=True, nullable=False),
        sa.Column("schedule", sa.String(), nullable=False),
        sa.Column("job", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=True),
        sa.Column("scheduled_for", TIMESTAMP, nullable=True),
        sa.Column("started", TIMESTAMP, nullable=False),
        sa.Column("finished", TIMESTAMP, nullable=True),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", DOCUMENT, nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
        sa.CheckConstraint("outcome IN ('running', 'ok', 'failed')", name="ck_job_runs_outcome"),
    )
    op.create_index("ix_job_runs_schedule_started", "job_runs", ["schedule", "started"])
    op.create_index("ix_job_runs_started", "job_runs", ["started"])


def downgrade() -> None:
    for table in ("job_runs", "scheduler_lease", "device_flips", "devices", "agents"):
        op.drop_table(table)
    op.drop_table("ingest_batches")
    op.drop_table("api_tokens")
    op.execute("DELETE FROM metric_samples WHERE result_id IS NULL")
    with op.batch_alter_table("metric_samples") as batch:
        batch.alter_column("result_id", existing_type=IDENTIFIER, nullable=False)
