"""audit trail: seals name runs of rows instead of the sealer writing a hash into every row

Revision ID: tracker_0007
Revises: tracker_0006
Create Date: 2026-11-23 20:30:00
"""
from alembic import op

from jiesu.audit import downgrade_from_seals, upgrade_to_seals


revision = 'tracker_0007'
down_revision = 'tracker_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_to_seals(op, 'tracker')


def downgrade() -> None:
    downgrade_from_seals(op, 'tracker')
