"""notifications: index of each ticket's notifications, and of the given-up deliveries of each notification

The ticket page lists the ticket's given-up e-mails and webhook calls. Without an index on
tracker_notifications.ticket_id it read every given-up delivery of every ticket (the failed
index) and kept those of this ticket; now it reads the ticket's few notifications, then their
given-up deliveries through a partial index that holds only the given-up rows.

Revision ID: tracker_0013
Revises: tracker_0012
Create Date: 2026-11-25 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'tracker_0013'
down_revision = 'tracker_0012'
branch_labels = None
depends_on = None

FAILED = 'failed_at IS NOT NULL'


def upgrade() -> None:
    op.create_index('ix_tracker_notifications_ticket', 'tracker_notifications', ['ticket_id'], unique=False)
    op.create_index('ix_tracker_deliveries_failed_notification', 'tracker_deliveries', ['notification_id'],
                    unique=False, postgresql_where=sa.text(FAILED), sqlite_where=sa.text(FAILED))


def downgrade() -> None:
    op.drop_index('ix_tracker_deliveries_failed_notification', table_name='tracker_deliveries')
    op.drop_index('ix_tracker_notifications_ticket', table_name='tracker_notifications')
