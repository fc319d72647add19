"""supervision: unit log, order responses, dashboard indexes

Revision ID: tracker_0003
Revises: tracker_0002
Create Date: 2026-11-22 19:44:06.406197
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'tracker_0003'
down_revision = 'tracker_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tracker_rollups',
    sa.Column('period_key', sa.String(length=16), nullable=False),
    sa.Column('computed_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('period_key')
    )
    op.create_table('tracker_unit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tracker_unit_log', schema=None) as batch_op:
        batch_op.create_index('ix_tracker_unit_log_at', ['at', 'kind', 'unit_code'], unique=False)

    with op.batch_alter_table('tracker_return_visits', schema=None) as batch_op:
        batch_op.create_index('ix_tracker_return_visits_at', ['at', 'unit_code', 'outcome', 'department_caused'], unique=False)

    with op.batch_alter_table('tracker_supervision_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('response', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('responded_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('responded_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('closed_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('closing_note', sa.Text(), nullable=True))
        batch_op.create_index('ix_tracker_supervision_orders_created', ['created_at'], unique=False)

    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tracker_tickets_assigned', ['assigned_at', 'lead_code', 'state', 'sign_for_due', 'signed_for_at', 'reply_due', 'replied_at', 'reopen_count', 'outcome'], unique=False)
        batch_op.create_index('ix_tracker_tickets_closed', ['closed_at', 'state', 'outcome'], unique=False)
        batch_op.create_index('ix_tracker_tickets_received', ['received_at', 'channel', 'kind', 'district', 'category', 'state', 'lead_code', 'replied_at'], unique=False)
        batch_op.create_index('ix_tracker_tickets_replied', ['replied_at', 'lead_code'], unique=False)
        batch_op.create_index('ix_tracker_tickets_state_due', ['state', 'reply_due'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tracker_tickets_state_due')
        batch_op.drop_index('ix_tracker_tickets_replied')
        batch_op.drop_index('ix_tracker_tickets_received')
        batch_op.drop_index('ix_tracker_tickets_closed')
        batch_op.drop_index('ix_tracker_tickets_assigned')

    with op.batch_alter_table('tracker_supervision_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_tracker_supervision_orders_created')
        batch_op.drop_column('closing_note')
        batch_op.drop_column('closed_by')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('responded_by')
        batch_op.drop_column('responded_at')
        batch_op.drop_column('response')

    with op.batch_alter_table('tracker_return_visits', schema=None) as batch_op:
        batch_op.drop_index('ix_tracker_return_visits_at')

    with op.batch_alter_table('tracker_unit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_tracker_unit_log_at')

    op.drop_table('tracker_unit_log')
    op.drop_table('tracker_rollups')
