"""audit trail: seals name runs of rows instead of the sealer writing a hash into every row

Revision ID: router_0007
Revises: router_0006
Create Date: 2026-11-23 20:30:00
"""
from alembic import op

from jiesu.audit import downgrade_from_seals, upgrade_to_seals


revision = 'router_0007'
down_revision = 'router_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_to_seals(op, 'router')


def downgrade() -> None:
    downgrade_from_seals(op, 'router')
