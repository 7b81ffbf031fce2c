"""Scale-out: calls.node_id (which node holds a live call), agent_id nullable (calls without an agent yet),
and one event per (call_id, seq), which also serves reading a call's timeline in order."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.alter_column("agent_id", existing_type=sa.String(128), nullable=True)
        batch.add_column(sa.Column("node_id", sa.String(128)))
    op.create_index("ix_calls_status_node", "calls", ["status", "node_id"])
    op.create_index("ux_events_call_seq", "events", ["call_id", "seq"], unique=True)
    op.drop_index("ix_events_call_id", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_call_id", "events", ["call_id"])
    op.drop_index("ux_events_call_seq", table_name="events")
    op.drop_index("ix_calls_status_node", table_name="calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("node_id")
        batch.alter_column("agent_id", existing_type=sa.String(128), nullable=False)
