"""router returns, assignments, training data, directory versions

Revision ID: router_0002
Revises: router_0001
Create Date: 2026-11-22 19:10:02.887572
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'router_0002'
down_revision = 'router_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('router_assignments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('rule_id', sa.String(length=32), nullable=True),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('returned_at', jiesu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('return_reason_code', sa.String(length=32), nullable=True),
    sa.Column('return_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('router_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_router_assignments_rule_id'), ['rule_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_router_assignments_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_router_assignments_unit_code'), ['unit_code'], unique=False)

    op.create_table('router_directory_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('imported_by', sa.String(length=64), nullable=False),
    sa.Column('imported_at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('router_training_examples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=True),
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id')
    )
    with op.batch_alter_table('router_decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('returns', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('closed_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_router_decisions_phone', ['phone_hash', 'received_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('router_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_router_decisions_phone')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('returns')
        batch_op.drop_column('phone_hash')

    op.drop_table('router_training_examples')
    op.drop_table('router_directory_versions')
    with op.batch_alter_table('router_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_router_assignments_unit_code'))
        batch_op.drop_index(batch_op.f('ix_router_assignments_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_router_assignments_rule_id'))

    op.drop_table('router_assignments')
