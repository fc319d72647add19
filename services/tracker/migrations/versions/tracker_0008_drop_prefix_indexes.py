"""tickets: drop the indexes on state and on lead_code alone

Each is the leading column of a two-column index that serves the same look-ups
(ix_tracker_tickets_state_due, ix_tracker_tickets_lead_state), and every insert of a ticket
and every update that moves it (a non-HOT update) wrote both twice over.

Revision ID: tracker_0008
Revises: tracker_0007
Create Date: 2026-11-24 03:20:00
"""
from alembic import op


revision = 'tracker_0008'
down_revision = 'tracker_0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_tracker_tickets_state', table_name='tracker_tickets')
    op.drop_index('ix_tracker_tickets_lead_code', table_name='tracker_tickets')


def downgrade() -> None:
    op.create_index('ix_tracker_tickets_lead_code', 'tracker_tickets', ['lead_code'], unique=False)
    op.create_index('ix_tracker_tickets_state', 'tracker_tickets', ['state'], unique=False)
