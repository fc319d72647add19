"""unit log: a return (退单) keeps the clocks the unit held the ticket under

A return used to drop the ticket's sign-for and reply deadlines with its lead, so a unit that let either pass
and then returned the ticket lost that lateness from its scorecard (响应率, 按时办结率): the ticket left its
cohort. The return's row now keeps when the unit was given the ticket, its sign-for deadline, when it signed
for it and its reply deadline, as they stood, and the scorecard counts the lateness from them.

Returns made before this keep NULL: what their clocks were is no longer known, and they count as before.

Revision ID: tracker_0016
Revises: tracker_0015
Create Date: 2026-11-25 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'tracker_0016'
down_revision = 'tracker_0015'
branch_labels = None
depends_on = None

HELD = 'assigned_at IS NOT NULL'
CLOCKS = ('assigned_at', 'sign_for_due', 'signed_for_at', 'reply_due')


def upgrade() -> None:
    with op.batch_alter_table('tracker_unit_log', schema=None) as batch_op:
        for name in CLOCKS:
            batch_op.add_column(sa.Column(name, jiesu.db.UTCDateTime(timezone=True), nullable=True))
    op.create_index('ix_tracker_unit_log_held', 'tracker_unit_log',
                    ['assigned_at', 'unit_code', 'at', 'sign_for_due', 'signed_for_at', 'reply_due'], unique=False,
                    postgresql_where=sa.text(HELD), sqlite_where=sa.text(HELD))


def downgrade() -> None:
    op.drop_index('ix_tracker_unit_log_held', table_name='tracker_unit_log')
    with op.batch_alter_table('tracker_unit_log', schema=None) as batch_op:
        for name in reversed(CLOCKS):
            batch_op.drop_column(name)
