"""rating links: the one-time rating link (评价) of a reply on the ticket, and the mail that gives it to the citizen

intake_tickets.rating_link is the link ReturnVisitDue brings for a ticket from an online channel, which the
progress look-up offers; intake_rating_invitations owes it by mail to a citizen who left an address, sent
as the receipts are. Earlier tickets keep NULL: their replies' links were never kept here.

Revision ID: intake_0012
Revises: intake_0011
Create Date: 2026-11-26 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'intake_0012'
down_revision = 'intake_0011'
branch_labels = None
depends_on = None

PENDING = 'delivered_at IS NULL AND failed_at IS NULL'
FAILED = 'failed_at IS NOT NULL'


def upgrade() -> None:
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rating_link', sa.Text(), nullable=True))
    op.create_table('intake_rating_invitations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('link', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('failing_since', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failed_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('intake_rating_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intake_rating_invitations_delivered_at'), ['delivered_at'], unique=False)
        batch_op.create_index('ix_intake_rating_invitations_pending', ['next_attempt_at'], unique=False,
                              postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))
        batch_op.create_index('ix_intake_rating_invitations_failed', ['failed_at'], unique=False,
                              postgresql_where=sa.text(FAILED), sqlite_where=sa.text(FAILED))


def downgrade() -> None:
    with op.batch_alter_table('intake_rating_invitations', schema=None) as batch_op:
        batch_op.drop_index('ix_intake_rating_invitations_failed', postgresql_where=sa.text(FAILED),
                            sqlite_where=sa.text(FAILED))
        batch_op.drop_index('ix_intake_rating_invitations_pending', postgresql_where=sa.text(PENDING),
                            sqlite_where=sa.text(PENDING))
        batch_op.drop_index(batch_op.f('ix_intake_rating_invitations_delivered_at'))
    op.drop_table('intake_rating_invitations')
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.drop_column('rating_link')
