"""inbox: index of when each event was applied, for the purge of old entries

Revision ID: tracker_0006
Revises: tracker_0005
Create Date: 2026-11-23 17:00:00
"""
from alembic import op


revision = 'tracker_0006'
down_revision = 'tracker_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_tracker_inbox_processed_at', 'tracker_inbox', ['processed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tracker_inbox_processed_at', table_name='tracker_inbox')
