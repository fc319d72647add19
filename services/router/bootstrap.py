"""The router's wiring."""

from __future__ import annotations

from pathlib import Path

from jiesu.runtime import Runtime, ServiceSpec, Subscription
from jiesu.web import add_template_dir
from schemas import topics
from services.router import handlers
from services.router.api import api, pages
from services.router.domain.directory import Directory
from services.router.store import messaging, metadata

from jiesu.web import register_nav
from schemas.enums import Role

register_nav("派单队列", "/router/dispatch", (Role.DISPATCHER, Role.SUPERVISOR), order=20, home_for=(Role.DISPATCHER,))

HERE = Path(__file__).parent
add_template_dir(HERE / "templates")


async def setup(rt: Runtime) -> None:
    path = rt.settings.directory_file
    directory = Directory.from_yaml(path) if path else Directory.default()
    rt.state["router"] = handlers.RouterState(directory=directory)


def subscriptions(rt: Runtime) -> list[Subscription]:
    async def received(tx, envelope, payload):
        await handlers.on_received(tx, envelope, payload, rt.state["router"])

    return [Subscription((topics.RECEIVED, topics.RECONCILE),
                         {"TicketReceived": received, "ReconcileRequested": handlers.on_reconcile})]


SPEC = ServiceSpec(name="router", metadata=metadata, tables=messaging, routers=[api, pages], setup=setup,
                   subscriptions=subscriptions)
