"""audit trail: index of the rows not yet sealed

Revision ID: router_0005
Revises: router_0004
Create Date: 2026-11-22 23:15:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'router_0005'
down_revision = 'router_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_router_audit_unsealed', 'router_audit', ['id'], unique=False,
                    postgresql_where=sa.text('hash IS NULL'), sqlite_where=sa.text('hash IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_router_audit_unsealed', table_name='router_audit')
