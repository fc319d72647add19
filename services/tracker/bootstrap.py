"""The tracker's wiring."""

from __future__ import annotations

from pathlib import Path

from jiesu.runtime import Runtime, ServiceSpec, Subscription
from jiesu.web import add_template_dir
from schemas import topics
from services.tracker import handlers
from services.tracker.api import api, pages
from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.sla import SlaPolicy
from services.tracker.store import messaging, metadata

from jiesu.web import register_nav
from schemas.enums import Role

register_nav("工单", "/tracker/tickets", (Role.OPERATOR, Role.DISPATCHER, Role.VISITOR, Role.SUPERVISOR), order=50,
             home_for=(Role.VISITOR, Role.SUPERVISOR))
register_nav("本单位工单", "/tracker/inbox", (Role.DEPARTMENT,), order=10, home_for=(Role.DEPARTMENT,))

HERE = Path(__file__).parent
DEFAULT_CALENDAR = HERE / "calendar_overrides.yaml"
add_template_dir(HERE / "templates")


async def setup(rt: Runtime) -> None:
    calendar = WorkingCalendar.from_file(rt.settings.calendar_file or DEFAULT_CALENDAR,
                                         timezone=rt.settings.timezone)
    rt.state["tracker.clocks"] = handlers.Clocks(calendar=calendar, policy=SlaPolicy.default())


def subscriptions(rt: Runtime) -> list[Subscription]:
    async def assigned(tx, envelope, payload):
        await handlers.on_assigned(tx, envelope, payload, rt.state["tracker.clocks"])

    return [
        Subscription((topics.RECEIVED, topics.ASSIGNED, topics.RECONCILE), {
            "TicketReceived": handlers.on_received,
            "TicketAssigned": assigned,
            "DispatchNeeded": handlers.on_dispatch_needed,
            "TicketMerged": handlers.on_merged,
            "ReconcileRequested": handlers.on_reconcile,
        }),
    ]


SPEC = ServiceSpec(name="tracker", metadata=metadata, tables=messaging, routers=[api, pages], setup=setup,
                   subscriptions=subscriptions)
