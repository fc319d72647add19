"""audit trail: index of the rows not yet sealed

Revision ID: intake_0004
Revises: intake_0003
Create Date: 2026-11-22 23:15:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'intake_0004'
down_revision = 'intake_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_intake_audit_unsealed', 'intake_audit', ['id'], unique=False,
                    postgresql_where=sa.text('hash IS NULL'), sqlite_where=sa.text('hash IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_intake_audit_unsealed', table_name='intake_audit')
