"""tracker initial schema

Revision ID: tracker_0001
Revises: 
Create Date: 2026-11-22 18:56:25.042350
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'tracker_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tracker_dead_letters',
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
    sa.UniqueConstraint('topic', 'partition', 'offset', 'digest', name='uq_tracker_dead_letters_position')
    )
    with op.batch_alter_table('tracker_dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracker_dead_letters_topic'), ['topic'], unique=False)

    op.create_table('tracker_inbox',
    sa.Column('event_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('topic', sa.String(length=120), nullable=False),
    sa.Column('processed_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('tracker_outbox',
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
    with op.batch_alter_table('tracker_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_tracker_outbox_sent_at', ['sent_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracker_outbox_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index('ix_tracker_outbox_unsent', ['id'], unique=False, postgresql_where=sa.text('sent_at IS NULL'), sqlite_where=sa.text('sent_at IS NULL'))

    op.create_table('tracker_ticket_units',
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', 'unit_code')
    )
    with op.batch_alter_table('tracker_ticket_units', schema=None) as batch_op:
        batch_op.create_index('ix_tracker_ticket_units_unit', ['unit_code'], unique=False)

    op.create_table('tracker_tickets',
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('number', sa.String(length=21), nullable=True),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=True),
    sa.Column('urgency', sa.String(length=16), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('citizen_name', sa.String(length=100), nullable=True),
    sa.Column('citizen_phone', sa.String(length=32), nullable=True),
    sa.Column('confidential', sa.Boolean(), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=True),
    sa.Column('street', sa.String(length=32), nullable=True),
    sa.Column('address', sa.String(length=500), nullable=True),
    sa.Column('category', sa.String(length=64), nullable=True),
    sa.Column('lead_code', sa.String(length=32), nullable=True),
    sa.Column('lead_name', sa.String(length=100), nullable=True),
    sa.Column('co_handlers', sa.JSON(), nullable=False),
    sa.Column('routing', sa.JSON(), nullable=True),
    sa.Column('received_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('assigned_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sign_for_due', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('contact_due', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reply_due', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('warn_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('calendar_unconfirmed', sa.Boolean(), nullable=False),
    sa.Column('tracked_event_id', jiesu.db.UUIDStr(length=36), nullable=True),
    sa.Column('tracked_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('replied_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('merged_into', jiesu.db.UUIDStr(length=36), nullable=True),
    sa.Column('updated_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id'),
    sa.UniqueConstraint('number')
    )
    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracker_tickets_citizen_phone'), ['citizen_phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracker_tickets_lead_code'), ['lead_code'], unique=False)
        batch_op.create_index('ix_tracker_tickets_lead_state', ['lead_code', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracker_tickets_reply_due'), ['reply_due'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracker_tickets_state'), ['state'], unique=False)

    op.create_table('tracker_timeline',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('event_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('tracker_timeline', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracker_timeline_ticket_id'), ['ticket_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tracker_timeline', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_timeline_ticket_id'))

    op.drop_table('tracker_timeline')
    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_tickets_state'))
        batch_op.drop_index(batch_op.f('ix_tracker_tickets_reply_due'))
        batch_op.drop_index('ix_tracker_tickets_lead_state')
        batch_op.drop_index(batch_op.f('ix_tracker_tickets_lead_code'))
        batch_op.drop_index(batch_op.f('ix_tracker_tickets_citizen_phone'))

    op.drop_table('tracker_tickets')
    with op.batch_alter_table('tracker_ticket_units', schema=None) as batch_op:
        batch_op.drop_index('ix_tracker_ticket_units_unit')

    op.drop_table('tracker_ticket_units')
    with op.batch_alter_table('tracker_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_tracker_outbox_unsent', postgresql_where=sa.text('sent_at IS NULL'), sqlite_where=sa.text('sent_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_tracker_outbox_ticket_id'))
        batch_op.drop_index('ix_tracker_outbox_sent_at')

    op.drop_table('tracker_outbox')
    op.drop_table('tracker_inbox')
    with op.batch_alter_table('tracker_dead_letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_dead_letters_topic'))

    op.drop_table('tracker_dead_letters')
