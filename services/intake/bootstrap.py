"""Intake's wiring: tables, HTTP routes, subscriptions, background jobs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from jiesu.runtime import Runtime, ServiceSpec, Subscription
from schemas import topics
from services.intake import service
from services.intake.api import api
from services.intake.store import messaging, metadata


async def setup(rt: Runtime) -> None:
    return None


def subscriptions(rt: Runtime) -> list[Subscription]:
    return [Subscription((topics.LIFECYCLE, topics.RECONCILE),
                         {"TicketTracked": service.on_tracked, "ReconcileRequested": service.on_reconcile})]


def background(rt: Runtime):
    settings = rt.settings

    async def reconcile_loop() -> None:
        while True:
            await asyncio.sleep(settings.reconcile_every_seconds)
            try:
                await service.reconcile_stuck(rt.store("intake"),
                                              older_than=timedelta(seconds=settings.reconcile_after_seconds))
            except Exception as exc:  # noqa: BLE001 - the next pass retries
                service.log.warning("reconciliation pass failed", error=repr(exc))

    return [reconcile_loop]


SPEC = ServiceSpec(name="intake", metadata=metadata, tables=messaging, routers=[api], setup=setup,
                   subscriptions=subscriptions, background=background)
