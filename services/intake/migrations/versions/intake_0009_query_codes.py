"""query codes: 查询码, with which a citizen who gave no phone number looks up the progress

Revision ID: intake_0009
Revises: intake_0008
Create Date: 2026-11-24 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'intake_0009'
down_revision = 'intake_0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Earlier tickets keep NULL: their citizens were never given a code, so one made up now would open nothing.
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('query_code', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.drop_column('query_code')
