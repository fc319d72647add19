"""directory: the public part of the router's department directory, as last published (DirectoryPublished)

Revision ID: intake_0010
Revises: intake_0009
Create Date: 2026-11-24 19:00:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'intake_0010'
down_revision = 'intake_0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'intake_directory',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('activated_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('content', sa.JSON(), nullable=False),
        sa.Column('received_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('intake_directory')
