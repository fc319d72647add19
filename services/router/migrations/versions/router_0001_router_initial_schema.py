"""router initial schema

Revision ID: router_0001
Revises: 
Create Date: 2026-11-22 18:43:36.181426
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'router_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('router_dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('topic', sa.String(length=120), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.LargeBinary(), nullable=True),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('replayed_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('topic', 'partition', 'offset', 'digest', name='uq_router_dead_letters_position')
    )
    with op.batch_alter_table('router_dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_router_dead_letters_topic'), ['topic'], unique=False)

    op.create_table('router_decisions',
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('number', sa.String(length=21), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=True),
    sa.Column('street', sa.String(length=32), nullable=True),
    sa.Column('category', sa.String(length=64), nullable=True),
    sa.Column('lead_code', sa.String(length=32), nullable=True),
    sa.Column('co_handlers', sa.JSON(), nullable=False),
    sa.Column('reason', sa.JSON(), nullable=False),
    sa.Column('suggestions', sa.JSON(), nullable=False),
    sa.Column('why', sa.String(length=500), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('excluded', sa.JSON(), nullable=False),
    sa.Column('received_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id'),
    sa.UniqueConstraint('number')
    )
    with op.batch_alter_table('router_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_router_decisions_status', ['status', 'received_at'], unique=False)

    op.create_table('router_inbox',
    sa.Column('event_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('topic', sa.String(length=120), nullable=False),
    sa.Column('processed_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('router_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('topic', sa.String(length=120), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=True),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('router_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_router_outbox_sent_at', ['sent_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_router_outbox_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index('ix_router_outbox_unsent', ['id'], unique=False, postgresql_where=sa.text('sent_at IS NULL'), sqlite_where=sa.text('sent_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('router_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_router_outbox_unsent', postgresql_where=sa.text('sent_at IS NULL'), sqlite_where=sa.text('sent_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_router_outbox_ticket_id'))
        batch_op.drop_index('ix_router_outbox_sent_at')

    op.drop_table('router_outbox')
    op.drop_table('router_inbox')
    with op.batch_alter_table('router_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_router_decisions_status')

    op.drop_table('router_decisions')
    with op.batch_alter_table('router_dead_letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_router_dead_letters_topic'))

    op.drop_table('router_dead_letters')
