"""rating link expiry: when the citizen's rating link stops working (ReturnVisitDue.link_expires_at)

The progress page and the invitation mail stop offering a link once it has expired, instead of sending the
citizen to a page that says so. Links offered before this keep NULL: offered until the ticket moves on, as before.

Revision ID: intake_0013
Revises: intake_0012
Create Date: 2026-11-25 11:00:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'intake_0013'
down_revision = 'intake_0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rating_link_expires_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.drop_column('rating_link_expires_at')
