"""acknowledgements: the receipt e-mail (受理回执) owed to a citizen who gave an address

Revision ID: intake_0007
Revises: intake_0006
Create Date: 2026-11-24 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'intake_0007'
down_revision = 'intake_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('intake_acknowledgements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id')
    )
    with op.batch_alter_table('intake_acknowledgements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intake_acknowledgements_delivered_at'), ['delivered_at'], unique=False)
        batch_op.create_index('ix_intake_acknowledgements_pending', ['next_attempt_at'], unique=False,
                              postgresql_where=sa.text('delivered_at IS NULL'),
                              sqlite_where=sa.text('delivered_at IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('intake_acknowledgements', schema=None) as batch_op:
        batch_op.drop_index('ix_intake_acknowledgements_pending', postgresql_where=sa.text('delivered_at IS NULL'),
                            sqlite_where=sa.text('delivered_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_intake_acknowledgements_delivered_at'))
    op.drop_table('intake_acknowledgements')
