"""router models

Revision ID: router_0003
Revises: router_0002
Create Date: 2026-11-22 19:48:08.201262
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'router_0003'
down_revision = 'router_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('router_models',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('created_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('trained_by', sa.String(length=64), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version')
    )


def downgrade() -> None:
    op.drop_table('router_models')
