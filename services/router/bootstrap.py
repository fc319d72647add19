"""The router's wiring."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from jiesu.consumer import Batched
from jiesu.runtime import Runtime, ServiceSpec, Subscription
from jiesu.web import add_template_dir, register_nav
from schemas import topics
from schemas.enums import Role
from services.router import models, service
from services.router.api import api, pages
from services.router.cli import register as register_cli
from services.router.domain.directory import DEMO_CITY
from services.router.store import messaging, metadata

register_nav("派单队列", "/router/dispatch", (Role.DISPATCHER, Role.SUPERVISOR), order=20, accesskey="d",
             home_for=(Role.DISPATCHER,))
register_nav("规则试算", "/router/rules", (Role.DISPATCHER, Role.SUPERVISOR), order=21)
register_nav("退单分析", "/router/stats", (Role.DISPATCHER, Role.SUPERVISOR), order=22)
register_nav("部门目录", "/router/directory", (Role.ADMIN,), order=90, home_for=(Role.ADMIN,))

HERE = Path(__file__).parent
add_template_dir(HERE / "templates")
DIRECTORY_RELOAD_SECONDS = 10.0


async def setup(rt: Runtime) -> None:
    store = rt.store("router")
    current = await service.current_directory(store)
    if current is None:  # first start: the configured file (or the demo city) becomes version 1
        path = rt.settings.directory_file or DEMO_CITY
        version_id, directory, _ = await service.import_directory(store, Path(path).read_text(encoding="utf-8"),
                                                                  by="system")
    else:
        version_id, directory = current
    active = await models.active_model(store)
    if active is None:  # first start: a starter model from our own example tickets
        active = await models.train_starter(store, directory)
    model_id, classifier = active
    rt.state["router"] = service.RouterState(
        directory=directory, directory_version_id=version_id, threshold=rt.settings.router_threshold,
        phone_key=hashlib.sha256(f"jiesu-router-phone:{rt.secret}".encode()).digest(),
        classifier=classifier, model_id=model_id,
    )
    # Again at every start: the embedded broker keeps nothing across restarts (intake skips what it applied).
    await service.publish_directory(store, version_id, directory, resend=True)


def subscriptions(rt: Runtime) -> list[Subscription]:
    def with_state(fn):
        async def handler(tx, envelope, payload):
            await fn(tx, envelope, payload, rt.state["router"])

        return handler

    return [Subscription((topics.RECEIVED, topics.RETURNED, topics.LIFECYCLE, topics.RECONCILE), {
        "TicketReceived": Batched(lambda tx, items: service.route_received_many(tx, items, rt.state["router"])),
        "TicketReturned": with_state(service.reroute_after_return),
        "TicketClosed": service.on_closed,
        "TicketReopened": service.on_reopened,
        "ReconcileRequested": service.on_reconcile,
    })]


def background(rt: Runtime):
    async def follow_directory_and_model() -> None:
        """An admin may import a new directory, `jiesu train-router` may activate a new model: pick them up.
        An import owes its DirectoryPublished itself; the loop publishes one for a version in force that was
        written otherwise, and asks only when the version changed (the directory page puts its import in
        force itself, so what was asked about is remembered apart from the state)."""
        store = rt.store("router")
        published = rt.state["router"].directory_version_id  # setup published it
        while True:
            await asyncio.sleep(DIRECTORY_RELOAD_SECONDS)
            state = rt.state["router"]
            try:
                if await service.latest_directory_id(store) != state.directory_version_id:
                    current = await service.current_directory(store)  # parses the YAML: only when it changed
                    state.directory_version_id, state.directory = current
                    service.log.info("directory reloaded", version=state.directory.version)
                if state.directory_version_id != published:
                    await service.publish_directory(store, state.directory_version_id, state.directory)
                    published = state.directory_version_id
                if await models.latest_model_id(store) != state.model_id:
                    state.model_id, state.classifier = await models.active_model(store)
                    service.log.info("router model reloaded", version=state.classifier.version)
            except Exception as exc:  # noqa: BLE001 - the next pass retries
                service.log.warning("directory or model reload failed", error=repr(exc))

    return [follow_directory_and_model]


SPEC = ServiceSpec(name="router", metadata=metadata, tables=messaging, routers=[api, pages], setup=setup,
                   subscriptions=subscriptions, background=background, cli=register_cli, static_dir=HERE / "static")
