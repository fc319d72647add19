"""citizen rated: when the citizen rated the reply through the one-time link (ReturnVisitRecorded by the citizen)

The progress page says the rating arrived while a dissatisfied one waits for the visitor's call, instead of showing
已答复 and nothing else. Tickets rated before this keep NULL: their page says nothing, as before.

Revision ID: intake_0014
Revises: intake_0013
Create Date: 2026-11-27 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'intake_0014'
down_revision = 'intake_0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rated_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('intake_tickets', schema=None) as batch_op:
        batch_op.drop_column('rated_at')
