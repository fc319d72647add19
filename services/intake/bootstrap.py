"""Intake's wiring: tables, HTTP routes, pages, subscriptions, background jobs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from pathlib import Path

from jiesu.runtime import Runtime, ServiceSpec, Subscription
from jiesu.web import add_template_dir, register_nav
from schemas import topics
from schemas.enums import Role
from services.intake import mail, service
from services.intake.api import api
from services.intake.open311_api import open311_api
from services.intake.web import console_pages, letter_pages, lookup_pages
from services.intake.store import messaging, metadata

HERE = Path(__file__).parent
# The directory file the router starts from when none is configured (JIESU_DIRECTORY_FILE): its demo city. Intake
# reads it as data until the router publishes; it never imports the router's code for it.
DEMO_DIRECTORY = HERE.parent / "router" / "directory" / "demo_city.yaml"
DIRECTORY_RELOAD_SECONDS = 10.0
add_template_dir(HERE / "templates")
register_nav("来电登记", "/intake/console", (Role.OPERATOR,), order=5, accesskey="n", home_for=(Role.OPERATOR,))


async def setup(rt: Runtime) -> None:
    # New tickets owe a receipt by e-mail only when there is a mail server to send it through.
    store = rt.store("intake")
    store.local[service.ACKNOWLEDGE] = bool(rt.settings.mail_host)
    # The directory's public part as the router last published it; before it first does, the file it starts from.
    store.local[service.PLACES] = (await service.stored_places(store)
                                   or service.file_places(rt.settings.directory_file or DEMO_DIRECTORY))


def subscriptions(rt: Runtime) -> list[Subscription]:
    return [Subscription((topics.LIFECYCLE, topics.RETURNED, topics.RECONCILE, topics.DIRECTORY), {
        "TicketTracked": service.on_tracked,
        "TicketAccepted": service.on_accepted,
        "TicketReturned": service.on_returned,
        "CitizenContacted": service.on_contacted,
        "TicketReplied": service.on_replied,
        "TicketReopened": service.on_reopened,
        "TicketClosed": service.on_closed,
        "ExtensionRequested": service.on_extension_requested,
        "ExtensionDecided": service.on_extension_decided,
        "ReturnVisitDue": partial(service.on_return_visit_due, local=rt.store("intake").local),
        "ReturnVisitRecorded": service.on_visit_recorded,
        "ClockPaused": service.on_clock_paused,
        "ClockResumed": service.on_clock_resumed,
        "ReconcileRequested": service.on_reconcile,
        "DirectoryPublished": partial(service.on_directory_published, local=rt.store("intake").local),
    })]


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

    async def follow_directory() -> None:
        """Another intake process may have taken a newer directory from the router: use it too."""
        store = rt.store("intake")
        while True:
            await asyncio.sleep(DIRECTORY_RELOAD_SECONDS)
            try:
                activated_at = await service.stored_places_activated_at(store)
                if activated_at is not None and activated_at != store.local[service.PLACES].activated_at:
                    store.local[service.PLACES] = await service.stored_places(store)
                    service.log.info("directory reloaded", version=store.local[service.PLACES].version)
            except Exception as exc:  # noqa: BLE001 - the next pass retries
                service.log.warning("directory reload failed", error=repr(exc))

    jobs = [reconcile_loop, follow_directory]
    if settings.smtp_listen_port:
        jobs.append(mail.listener(rt))
    if settings.mail_host:
        jobs.append(mail.acknowledger(rt))
        jobs.append(mail.inviter(rt))
    return jobs


async def purge(rt: Runtime) -> None:
    """The hourly purge's part for intake: rate-limit windows a day old, receipts and rating invitations done with."""
    store = rt.store("intake")
    await service.purge_rate_limits(store)
    await mail.purge_acknowledgements(store, timedelta(days=rt.settings.outbox_retention_days))
    await mail.purge_invitations(store, timedelta(days=rt.settings.outbox_retention_days))


SPEC = ServiceSpec(name="intake", metadata=metadata, tables=messaging,
                   routers=[api, console_pages, letter_pages, lookup_pages, open311_api], setup=setup,
                   subscriptions=subscriptions, background=background, purge=purge,
                   static_dir=HERE / "static")
