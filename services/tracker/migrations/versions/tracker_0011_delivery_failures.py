"""deliveries: give up on an e-mail or webhook call refused for good, or failing for too long

failing_since says since when a delivery has failed, failed_at that it was given up (it is
never sent again and keeps its last_error, for the pages). The pending index now leaves the
given-up rows out, so that the lease's look stays a probe of the rows still owed; a second
partial index holds only the given-up ones. Rows failing when this runs start their clock at
their next failure.

Revision ID: tracker_0011
Revises: tracker_0010
Create Date: 2026-11-25 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'tracker_0011'
down_revision = 'tracker_0010'
branch_labels = None
depends_on = None

PENDING = 'delivered_at IS NULL AND failed_at IS NULL'
FAILED = 'failed_at IS NOT NULL'


def upgrade() -> None:
    with op.batch_alter_table('tracker_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failing_since', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('failed_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
    op.drop_index('ix_tracker_deliveries_pending', table_name='tracker_deliveries')
    op.create_index('ix_tracker_deliveries_pending', 'tracker_deliveries', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))
    op.create_index('ix_tracker_deliveries_failed', 'tracker_deliveries', ['failed_at'], unique=False,
                    postgresql_where=sa.text(FAILED), sqlite_where=sa.text(FAILED))


def downgrade() -> None:
    op.drop_index('ix_tracker_deliveries_failed', table_name='tracker_deliveries')
    op.drop_index('ix_tracker_deliveries_pending', table_name='tracker_deliveries')
    op.create_index('ix_tracker_deliveries_pending', 'tracker_deliveries', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text('delivered_at IS NULL'), sqlite_where=sa.text('delivered_at IS NULL'))
    with op.batch_alter_table('tracker_deliveries', schema=None) as batch_op:
        batch_op.drop_column('failed_at')
        batch_op.drop_column('failing_since')
