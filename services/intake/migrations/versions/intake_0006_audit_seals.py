"""audit trail: seals name runs of rows instead of the sealer writing a hash into every row

Revision ID: intake_0006
Revises: intake_0005
Create Date: 2026-11-23 20:30:00
"""
from alembic import op

from jiesu.audit import downgrade_from_seals, upgrade_to_seals


revision = 'intake_0006'
down_revision = 'intake_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_to_seals(op, 'intake')


def downgrade() -> None:
    downgrade_from_seals(op, 'intake')
