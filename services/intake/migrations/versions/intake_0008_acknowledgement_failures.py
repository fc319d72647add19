"""acknowledgements: give up on a receipt (受理回执) refused for good, or failing for too long

failing_since says since when a receipt has failed, failed_at that it was given up (it is
never sent again and keeps its last_error, for the operators' list; the purge of sent
receipts leaves it). The pending index now leaves the given-up rows out, so that the
lease's look stays a probe of the receipts still owed; a second partial index holds only the
given-up ones. Receipts failing when this runs start their clock at their next failure.

Revision ID: intake_0008
Revises: intake_0007
Create Date: 2026-11-25 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'intake_0008'
down_revision = 'intake_0007'
branch_labels = None
depends_on = None

PENDING = 'delivered_at IS NULL AND failed_at IS NULL'
FAILED = 'failed_at IS NOT NULL'


def upgrade() -> None:
    with op.batch_alter_table('intake_acknowledgements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failing_since', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('failed_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
    op.drop_index('ix_intake_acknowledgements_pending', table_name='intake_acknowledgements')
    op.create_index('ix_intake_acknowledgements_pending', 'intake_acknowledgements', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))
    op.create_index('ix_intake_acknowledgements_failed', 'intake_acknowledgements', ['failed_at'], unique=False,
                    postgresql_where=sa.text(FAILED), sqlite_where=sa.text(FAILED))


def downgrade() -> None:
    op.drop_index('ix_intake_acknowledgements_failed', table_name='intake_acknowledgements')
    op.drop_index('ix_intake_acknowledgements_pending', table_name='intake_acknowledgements')
    op.create_index('ix_intake_acknowledgements_pending', 'intake_acknowledgements', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text('delivered_at IS NULL'), sqlite_where=sa.text('delivered_at IS NULL'))
    with op.batch_alter_table('intake_acknowledgements', schema=None) as batch_op:
        batch_op.drop_column('failed_at')
        batch_op.drop_column('failing_since')
