"""supervision orders: the level an escalated order was raised from, and when an order was released

from_level keeps on the order the level escalation raised it from (一般 normal or 重点 key), which the
bulletin counts it under; until now the bulletin read it out of the JSON of the ticket's timeline entry
(SupervisionEscalated). Escalated orders take it from that entry here; one with no such entry keeps NULL,
and the bulletin counts it under the level it has, as before.

released_at says since when an unanswered order no longer binds its unit (its ticket is finished, or
its unit no longer holds the ticket); the partial index the escalation looks in at every poll leaves
such orders out, so that returned orders waiting in the office's list no longer cost every look. Orders
released before this runs are marked at their ticket's last change (tracker_tickets.updated_at).

Both fills are one UPDATE each, the same SQL on SQLite and PostgreSQL but for reading the timeline's
JSON, which SQLAlchemy writes for each (JSON_EXTRACT on SQLite, ->> on PostgreSQL).

Revision ID: tracker_0014
Revises: tracker_0013
Create Date: 2026-11-24 15:30:00
"""
from alembic import op
import sqlalchemy as sa
import jiesu.db


revision = 'tracker_0014'
down_revision = 'tracker_0013'
branch_labels = None
depends_on = None

AWAITING_BEFORE = 'escalated_at IS NULL AND responded_at IS NULL AND closed_at IS NULL'
AWAITING = AWAITING_BEFORE + ' AND released_at IS NULL'
# escalation.TICKET_FINISHED as it stands at this revision.
FINISHED = ('closed', 'merged', 'answered_directly')

orders = sa.table('tracker_supervision_orders', sa.column('order_no', sa.String), sa.column('ticket_id', sa.String),
                  sa.column('unit_code', sa.String), sa.column('escalated_at'), sa.column('responded_at'),
                  sa.column('closed_at'), sa.column('from_level', sa.String), sa.column('released_at'))
timeline = sa.table('tracker_timeline', sa.column('id', sa.Integer), sa.column('ticket_id', sa.String),
                    sa.column('event_type', sa.String), sa.column('data', sa.JSON))
tickets = sa.table('tracker_tickets', sa.column('ticket_id', sa.String), sa.column('state', sa.String),
                   sa.column('lead_code', sa.String), sa.column('updated_at'))
units = sa.table('tracker_ticket_units', sa.column('ticket_id', sa.String), sa.column('unit_code', sa.String))


def upgrade() -> None:
    with op.batch_alter_table('tracker_supervision_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('from_level', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('released_at', jiesu.db.UTCDateTime(timezone=True), nullable=True))

    o, tl, t, u = orders.c, timeline.c, tickets.c, units.c
    raised_from = (sa.select(tl.data['from_level'].as_string())
                   .where(tl.ticket_id == o.ticket_id, tl.event_type == 'SupervisionEscalated',
                          tl.data['order_no'].as_string() == o.order_no)
                   .order_by(tl.id).limit(1).scalar_subquery())
    op.execute(orders.update().where(o.escalated_at.is_not(None)).values(from_level=raised_from))

    ticket = sa.select(t.ticket_id).where(t.ticket_id == o.ticket_id)
    finished = sa.exists(ticket.where(t.state.in_(FINISHED)))
    leads = sa.exists(ticket.where(t.lead_code == o.unit_code))
    helps = sa.exists(sa.select(u.ticket_id).where(u.ticket_id == o.ticket_id, u.unit_code == o.unit_code))
    changed = sa.select(t.updated_at).where(t.ticket_id == o.ticket_id).scalar_subquery()
    op.execute(orders.update().where(o.responded_at.is_(None), o.closed_at.is_(None), sa.exists(ticket),
                                     sa.or_(finished, sa.and_(~leads, ~helps)))
               .values(released_at=changed))

    op.drop_index('ix_tracker_supervision_orders_awaiting', table_name='tracker_supervision_orders')
    op.create_index('ix_tracker_supervision_orders_awaiting', 'tracker_supervision_orders', ['due_at'], unique=False,
                    postgresql_where=sa.text(AWAITING), sqlite_where=sa.text(AWAITING))


def downgrade() -> None:
    op.drop_index('ix_tracker_supervision_orders_awaiting', table_name='tracker_supervision_orders')
    with op.batch_alter_table('tracker_supervision_orders', schema=None) as batch_op:
        batch_op.drop_column('released_at')
        batch_op.drop_column('from_level')
    op.create_index('ix_tracker_supervision_orders_awaiting', 'tracker_supervision_orders', ['due_at'], unique=False,
                    postgresql_where=sa.text(AWAITING_BEFORE), sqlite_where=sa.text(AWAITING_BEFORE))
