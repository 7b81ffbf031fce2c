"""Baseline: the calls and events tables as the single-node releases made them (with create_all).

A database made by those releases has these tables but no alembic_version; ``service.schema`` stamps
it at this revision instead of creating anything, so the later revisions upgrade it in place.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(128), primary_key=True),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("end_reason", sa.String(200)),
        sa.Column("source", sa.String(32)),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("audio_seconds", sa.Float),
        sa.Column("metadata", sa.JSON),
        sa.Column("media", sa.JSON),
        sa.Column("summary", sa.JSON),
        sa.Column("peak_heat", sa.Float),
        sa.Column("warning_count", sa.Integer),
    )
    for column in ("agent_id", "started_at", "peak_heat", "warning_count"):
        op.create_index(f"ix_calls_{column}", "calls", [column])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_events_call_id", "events", ["call_id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("calls")
