"""login failures

Revision ID: identity_0002
Revises: identity_0001
Create Date: 2026-11-22 19:26:25.721647
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'identity_0002'
down_revision = 'identity_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('identity_login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('identity_login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_login_failures_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_identity_login_failures_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_identity_login_failures_username'), ['username'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('identity_login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_login_failures_username'))
        batch_op.drop_index(batch_op.f('ix_identity_login_failures_at'))
        batch_op.drop_index(batch_op.f('ix_identity_login_failures_address'))

    op.drop_table('identity_login_failures')
