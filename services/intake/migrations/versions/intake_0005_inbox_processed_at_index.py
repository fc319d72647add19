"""inbox: index of when each event was applied, for the purge of old entries

Revision ID: intake_0005
Revises: intake_0004
Create Date: 2026-11-23 17:00:00
"""
from alembic import op


revision = 'intake_0005'
down_revision = 'intake_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_intake_inbox_processed_at', 'intake_inbox', ['processed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_intake_inbox_processed_at', table_name='intake_inbox')
