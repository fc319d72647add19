"""tickets: the citizen's attachments (metadata only), so department staff can be shown and granted them

Tickets received before this revision keep NULL: TicketReceived is not replayed to fill them in.

Revision ID: tracker_0009
Revises: tracker_0008
Create Date: 2026-11-24 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'tracker_0009'
down_revision = 'tracker_0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attachments', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.drop_column('attachments')
