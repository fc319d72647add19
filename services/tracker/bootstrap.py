"""The tracker's wiring."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from jiesu.consumer import Batched
from jiesu.runtime import Runtime, ServiceSpec, Subscription
from jiesu.web import add_template_dir, register_nav
from schemas import topics
from schemas.enums import Role
from services.tracker import calendar_cli, handlers, report_cli
from services.tracker.actions import Tracker
from services.tracker.api import api
from services.tracker.domain.calendar import WorkingCalendar
from services.tracker.domain.sla import SlaPolicy
from services.tracker.notify import DeliveryWorker, purge_deliveries
from services.tracker.rollup import RollupWorker
from services.tracker.store import messaging, metadata
from services.tracker.supervision import escalate_forever, hub, sup, sup_api
from services.tracker.timers import TimerLoop
from services.tracker.web import pages

register_nav("工单", "/tracker/tickets", (Role.OPERATOR, Role.DISPATCHER, Role.VISITOR, Role.SUPERVISOR), order=50,
             home_for=(Role.SUPERVISOR,))
register_nav("本单位工单", "/tracker/inbox", (Role.DEPARTMENT,), order=10, accesskey="i", home_for=(Role.DEPARTMENT,))
register_nav("回访队列", "/tracker/visits", (Role.VISITOR, Role.SUPERVISOR), order=20, accesskey="v",
             home_for=(Role.VISITOR,))
register_nav("督办台账", "/tracker/sup/ledger", (Role.SUPERVISOR,), order=30, accesskey="s")
register_nav("部门考评", "/tracker/sup/scorecard", (Role.SUPERVISOR,), order=31)
register_nav("趋势热点", "/tracker/sup/trends", (Role.SUPERVISOR,), order=32)
register_nav("通报报告", "/tracker/sup/reports", (Role.SUPERVISOR,), order=33)
register_nav("延期审批", "/tracker/supervision", (Role.SUPERVISOR,), order=34)
register_nav("工作日历", "/tracker/calendar", (Role.SUPERVISOR,), order=90)

HERE = Path(__file__).parent
DEFAULT_CALENDAR = HERE / "calendar_overrides.yaml"
add_template_dir(HERE / "templates")


async def setup(rt: Runtime) -> None:
    calendar = WorkingCalendar.from_file(rt.settings.calendar_file or DEFAULT_CALENDAR,
                                         timezone=rt.settings.timezone)
    clocks = handlers.Clocks(calendar=calendar, policy=SlaPolicy.default(), settings=rt.settings)
    rt.state["tracker.clocks"] = clocks
    rt.state["tracker"] = Tracker(store=rt.store("tracker"), clocks=clocks, secret=rt.secret)


def subscriptions(rt: Runtime) -> list[Subscription]:
    async def assigned(tx, items):
        await handlers.assigned_many(tx, items, rt.state["tracker.clocks"])

    async def merged(tx, envelope, p):
        await handlers.on_merged(tx, envelope, p, rt.state["tracker.clocks"])

    return [
        Subscription((topics.RECEIVED, topics.ASSIGNED, topics.RECONCILE), {
            "TicketReceived": handlers.on_received,
            "TicketAssigned": Batched(assigned),
            "DispatchNeeded": handlers.on_dispatch_needed,
            "TicketMerged": merged,
            "ReconcileRequested": handlers.on_reconcile,
        }),
    ]


def background(rt: Runtime) -> list:
    """Timers (warnings, reminders, supervision orders), the escalation of orders left unanswered past their
    date, and notification delivery, in every instance."""
    store = rt.store("tracker")

    async def timer_loop() -> None:
        await TimerLoop(store, rt.state["tracker.clocks"], on_fired=hub(rt).notify).run(rt.settings.timer_poll_seconds)

    async def order_escalation() -> None:
        await escalate_forever(store, rt.state["tracker.clocks"], rt.settings.supervision_escalation_working_days)

    async def deliveries() -> None:
        await DeliveryWorker(store, rt.settings, rt.http).run(max(rt.settings.timer_poll_seconds, 0.5))

    async def rollups() -> None:
        await RollupWorker(store, rt.state["tracker.clocks"].calendar.timezone).run()

    return [timer_loop, order_escalation, deliveries, rollups]


async def purge(rt: Runtime) -> None:
    """The hourly purge's part for the tracker: notification deliveries done with."""
    await purge_deliveries(rt.store("tracker"), timedelta(days=rt.settings.outbox_retention_days))



def add_commands(sub) -> None:
    calendar_cli.add_commands(sub)
    report_cli.add_commands(sub)


SPEC = ServiceSpec(name="tracker", metadata=metadata, tables=messaging, routers=[api, sup_api, pages, sup],
                   setup=setup, subscriptions=subscriptions, background=background, purge=purge,
                   cli=add_commands, static_dir=HERE / "static")
