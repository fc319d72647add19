"""intake: channel fields, lifecycle status for look-ups, rate limits

Revision ID: intake_0002
Revises: intake_0001
Create Date: 2026-11-22 19:20:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'intake_0002'
down_revision = 'intake_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('may_publish', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('answer', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('duplicate_of', jiesu.db.UUIDStr(length=36), nullable=True))
        batch_op.add_column(sa.Column('attachments', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('reply', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('reply_due', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('status_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))

    op.create_table('intake_rate_limits',
    sa.Column('bucket', sa.String(length=200), nullable=False),
    sa.Column('window_start', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket')
    )
    with op.batch_alter_table('intake_rate_limits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intake_rate_limits_window_start'), ['window_start'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('intake_rate_limits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intake_rate_limits_window_start'))
    op.drop_table('intake_rate_limits')
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        for column in ('closed_at', 'status_at', 'reply_due', 'reply', 'attachments', 'duplicate_of', 'answer',
                       'may_publish'):
            batch_op.drop_column(column)
