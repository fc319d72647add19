"""paused clock: the state a ticket showed before its reply clock was paused (待补充材料, 挂账), for ClockResumed

Revision ID: intake_0011
Revises: intake_0010
Create Date: 2026-11-25 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'intake_0011'
down_revision = 'intake_0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Earlier tickets keep NULL: intake did not show their pauses, so a resumption keeps the state they show.
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resume_to', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.drop_column('resume_to')
