"""supervision orders: escalation of those left unanswered past their date (逾期升级)

escalated_at says an order was escalated (once); the partial index holds only the orders
escalation may still claim, so its look at every poll reads a few index entries. Orders
already overdue when this runs are escalated by the first pass after it.

Revision ID: tracker_0010
Revises: tracker_0009
Create Date: 2026-11-24 14:00:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'tracker_0010'
down_revision = 'tracker_0009'
branch_labels = None
depends_on = None

AWAITING = 'escalated_at IS NULL AND responded_at IS NULL AND closed_at IS NULL'


def upgrade() -> None:
    with op.batch_alter_table('tracker_supervision_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalated_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
    op.create_index('ix_tracker_supervision_orders_awaiting', 'tracker_supervision_orders', ['due_at'], unique=False,
                    postgresql_where=sa.text(AWAITING), sqlite_where=sa.text(AWAITING))


def downgrade() -> None:
    op.drop_index('ix_tracker_supervision_orders_awaiting', table_name='tracker_supervision_orders')
    with op.batch_alter_table('tracker_supervision_orders', schema=None) as batch_op:
        batch_op.drop_column('escalated_at')
