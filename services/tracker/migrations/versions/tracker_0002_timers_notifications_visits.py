"""timers, notifications, extensions, return visits, supervision

Revision ID: tracker_0002
Revises: tracker_0001
Create Date: 2026-11-22 19:02:13.286759
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'tracker_0002'
down_revision = 'tracker_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tracker_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('notification_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tracker_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_tracker_deliveries_pending', ['next_attempt_at'], unique=False, postgresql_where=sa.text('delivered_at IS NULL'), sqlite_where=sa.text('delivered_at IS NULL'))

    op.create_table('tracker_extensions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('working_days', sa.Integer(), nullable=False),
    sa.Column('requested_due', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('approved', sa.Boolean(), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tracker_extensions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracker_extensions_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('tracker_notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=True),
    sa.Column('number', sa.String(length=21), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('read_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tracker_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_tracker_notifications_unit', ['unit_code', 'read_at'], unique=False)

    op.create_table('tracker_return_visits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('department_caused', sa.Boolean(), nullable=True),
    sa.Column('unit_code', sa.String(length=32), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.Column('at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tracker_return_visits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracker_return_visits_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('tracker_supervision_orders',
    sa.Column('order_no', sa.String(length=32), nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('unit_code', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('due_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('order_no')
    )
    with op.batch_alter_table('tracker_supervision_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracker_supervision_orders_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('tracker_timers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('due_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('fired_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tracker_timers', schema=None) as batch_op:
        batch_op.create_index('ix_tracker_timers_pending', ['due_at'], unique=False, postgresql_where=sa.text('fired_at IS NULL'), sqlite_where=sa.text('fired_at IS NULL'))
        batch_op.create_index(batch_op.f('ix_tracker_timers_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('tracker_unit_contacts',
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('unit_code')
    )
    op.create_table('tracker_visit_links',
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('expires_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('nonce')
    )
    with op.batch_alter_table('tracker_visit_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracker_visit_links_ticket_id'), ['ticket_id'], unique=False)

    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clock_started_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reopened', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('extensions', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('pauses', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('paused_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('signed_for_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('contacted_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('replied_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('returns_count', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('reopen_count', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('dissatisfied_count', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('visit_due', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('visit_method', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('visit_attempts', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('citizen_rating', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('closed_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('supervised', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('tracker_tickets', schema=None) as batch_op:
        batch_op.drop_column('supervised')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('outcome')
        batch_op.drop_column('citizen_rating')
        batch_op.drop_column('visit_attempts')
        batch_op.drop_column('visit_method')
        batch_op.drop_column('visit_due')
        batch_op.drop_column('dissatisfied_count')
        batch_op.drop_column('reopen_count')
        batch_op.drop_column('returns_count')
        batch_op.drop_column('replied_by')
        batch_op.drop_column('contacted_at')
        batch_op.drop_column('signed_for_at')
        batch_op.drop_column('paused_at')
        batch_op.drop_column('pauses')
        batch_op.drop_column('extensions')
        batch_op.drop_column('reopened')
        batch_op.drop_column('clock_started_at')

    with op.batch_alter_table('tracker_visit_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_visit_links_ticket_id'))

    op.drop_table('tracker_visit_links')
    op.drop_table('tracker_unit_contacts')
    with op.batch_alter_table('tracker_timers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_timers_ticket_id'))
        batch_op.drop_index('ix_tracker_timers_pending', postgresql_where=sa.text('fired_at IS NULL'), sqlite_where=sa.text('fired_at IS NULL'))

    op.drop_table('tracker_timers')
    with op.batch_alter_table('tracker_supervision_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_supervision_orders_ticket_id'))

    op.drop_table('tracker_supervision_orders')
    with op.batch_alter_table('tracker_return_visits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_return_visits_ticket_id'))

    op.drop_table('tracker_return_visits')
    with op.batch_alter_table('tracker_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_tracker_notifications_unit')

    op.drop_table('tracker_notifications')
    with op.batch_alter_table('tracker_extensions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_extensions_ticket_id'))

    op.drop_table('tracker_extensions')
    with op.batch_alter_table('tracker_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_tracker_deliveries_pending', postgresql_where=sa.text('delivered_at IS NULL'), sqlite_where=sa.text('delivered_at IS NULL'))

    op.drop_table('tracker_deliveries')
