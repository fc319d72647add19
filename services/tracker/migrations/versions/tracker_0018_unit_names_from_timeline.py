"""code names: units named from their assignments in the timeline

The scorecard names a unit that leads no ticket any more (it returned every ticket it was given) from
tracker_code_names, which keeps the names TicketAssigned brings. A unit whose every assignment came before the
tracker kept unit names there was shown by its code. The timeline has named it all along: each assignment's entry
says 派单至 <name> and keeps the unit's code (data.lead). This names such units from their latest assignment.

Only units the scorecard counts (the unit log, return visits) without a name kept yet, and only the timeline entries
of their latest tickets (by the timeline's ticket index): a few rows a unit, however long the timeline. A unit none
of whose entries names it stays unnamed (the scorecard says why). The summary's wording is
copied here, not imported: a migration does what it did when it was written.

Downgrade changes nothing: the names are right, and which ones came from here is not kept.

Revision ID: tracker_0018
Revises: tracker_0017
Create Date: 2026-11-25 13:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'tracker_0018'
down_revision = 'tracker_0017'
branch_labels = None
depends_on = None
# Rows only, no schema: the down-and-up test of migrations expects no schema change from it.
data_only = True

ASSIGNED_TO = '派单至 '  # handlers: f"派单至 {lead.name}" + f"，协办 {co}" + f"（依据：{why}）"
TICKETS_LOOKED_AT = 20  # a unit's latest tickets whose timeline is read for its name


def name_in(summary: str) -> str | None:
    """The lead unit's name in an assignment's timeline summary, or None when the entry names no unit."""
    if not summary.startswith(ASSIGNED_TO):
        return None  # 派单未生效 and the like
    name = summary[len(ASSIGNED_TO):].split('（依据：')[0].split('，协办 ')[0].strip()
    return name[:200] or None


def upgrade() -> None:
    bind = op.get_bind()
    code_names = sa.table('tracker_code_names', sa.column('code', sa.String), sa.column('name', sa.String))
    unit_log = sa.table('tracker_unit_log', sa.column('id', sa.Integer), sa.column('ticket_id', sa.String),
                        sa.column('unit_code', sa.String))
    visits = sa.table('tracker_return_visits', sa.column('unit_code', sa.String))
    timeline = sa.table('tracker_timeline', sa.column('id', sa.Integer), sa.column('ticket_id', sa.String),
                        sa.column('event_type', sa.String), sa.column('summary', sa.Text),
                        sa.column('data', sa.JSON))
    counted = sa.union(sa.select(unit_log.c.unit_code), sa.select(visits.c.unit_code).where(
        visits.c.unit_code.is_not(None))).subquery()
    unnamed = bind.execute(sa.select(counted.c.unit_code).where(
        counted.c.unit_code.not_in(sa.select(code_names.c.code)))).scalars().all()
    names = {}
    for code in sorted(unnamed):
        ids = bind.execute(sa.select(unit_log.c.ticket_id).where(unit_log.c.unit_code == code)
                           .order_by(unit_log.c.id.desc()).limit(TICKETS_LOOKED_AT)).scalars().all()
        if not ids:
            continue
        entries = bind.execute(sa.select(timeline.c.summary, timeline.c.data).where(
            timeline.c.ticket_id.in_(sorted(set(ids))), timeline.c.event_type == 'TicketAssigned')
            .order_by(timeline.c.id.desc())).all()
        for summary, data in entries:  # the latest assignment to the unit that names it
            name = name_in(summary or '') if isinstance(data, dict) and data.get('lead') == code else None
            if name and name != code:
                names[code] = name
                break
    if names:
        op.bulk_insert(code_names, [{'code': code, 'name': names[code]} for code in sorted(names)])


def downgrade() -> None:
    pass
