"""code names: the directory's names of the category, district and street codes tickets carry

Revision ID: tracker_0012
Revises: tracker_0011
Create Date: 2026-11-24 09:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'tracker_0012'
down_revision = 'tracker_0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled as tickets are assigned (TicketAssigned.names); until a code's next assignment, pages show the code.
    op.create_table('tracker_code_names',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )


def downgrade() -> None:
    op.drop_table('tracker_code_names')
