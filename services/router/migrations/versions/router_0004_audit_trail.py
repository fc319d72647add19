"""audit trail

Revision ID: router_0004
Revises: router_0003
Create Date: 2026-11-22 20:06:18.520663
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db
from jiesu.audit import drop_protection_sql, protection_sql


revision = 'router_0004'
down_revision = 'router_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('router_audit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', jiesu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('ticket_id', jiesu.db.UUIDStr(length=36), nullable=True),
    sa.Column('event_id', jiesu.db.UUIDStr(length=36), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('router_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_router_audit_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_router_audit_ticket_id'), ['ticket_id'], unique=False)


    for statement in protection_sql("router_audit", op.get_bind().dialect.name, until_sealed=True):
        op.execute(statement)

def downgrade() -> None:
    for statement in drop_protection_sql("router_audit", op.get_bind().dialect.name):
        op.execute(statement)
    with op.batch_alter_table('router_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_router_audit_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_router_audit_action'))

    op.drop_table('router_audit')
