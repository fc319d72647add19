"""tickets: the working state a ticket set aside goes back to

resume_to keeps the state (signed_for, contacted or reopened) a ticket was in when it was set aside: waiting on
the citizen (待补充材料), deferred (挂账) or with an extension requested (延期申请). Resuming or deciding the
extension takes it back there; until now it always went to contacted (已联系), so an urgent ticket never
contacted lost its contact reminder and a 重办 lost its state.

Tickets set aside before this runs keep NULL, and go back to contacted once the citizen was contacted, else
to signed_for (actions._resume_to): the ticket row does not say whether a 重办 was signed for again since.

Revision ID: tracker_0015
Revises: tracker_0014
Create Date: 2026-11-24 22:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'tracker_0015'
down_revision = 'tracker_0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resume_to', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.drop_column('resume_to')
