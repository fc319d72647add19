"""Intake checks and shows codes by the directory the router has in force: the router publishes the directory's
public part (DirectoryPublished) whenever another version comes into force and again at start, and intake keeps
the newest it has seen. A street given with a district it is not in is refused, and so is a code the router's
directory lacks; nothing is recorded."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt

import httpx
import pytest
from sqlalchemy import func, select, update

from jiesu.db import Database
from jiesu.messaging import ServiceStore
from jiesu.migrate import upgrade
from schemas.enums import Role
from schemas.events import DIRECTORY_ID, DirectoryPublished, Envelope, PublicCategory, PublicDistrict, PublicStreet
from services.intake import service as intake
from services.intake.store import directory as intake_directory
from services.intake.store import messaging as intake_tables
from services.intake.store import tickets
from services.router import service as router
from services.router.cli import directory_command
from services.router.domain.directory import DEMO_CITY
from services.router.store import directory_versions
from services.router.store import messaging as router_tables
from tests.integration.test_intake_hotline import call, wait_for
from tests.integration.test_page_errors import BROWSER, PASSWORD, logged_in, serving

BIKES = "  - {code: CM.ORDER.BIKES, name: 共享单车乱停放, parent: CM.ORDER}\n"


def next_version() -> str:
    """The demo city with one more category, as an admin would import it."""
    text = DEMO_CITY.read_text(encoding="utf-8").replace('version: "2026.1"', 'version: "2026.2"')
    ads = "  - {code: CM.ORDER.ADS, name: 小广告与户外广告, parent: CM.ORDER}\n"
    assert ads in text
    return text.replace(ads, ads + BIKES)


async def _store(settings, name: str, tables) -> ServiceStore:
    await asyncio.to_thread(upgrade, name, settings.database_url(name))
    return ServiceStore(name, Database(settings.database_url(name)), tables)


async def _published(store: ServiceStore) -> list[tuple[Envelope, bool]]:
    outbox = store.tables.outbox
    async with store.db.session() as s:
        rows = (await s.execute(select(outbox.c.value, outbox.c.sent_at, outbox.c.topic)
                                .where(outbox.c.event_type == "DirectoryPublished").order_by(outbox.c.id))).all()
    assert {r.topic for r in rows} <= {"directory.public"}
    return [(Envelope.from_bytes(r.value), r.sent_at is not None) for r in rows]


async def test_the_router_publishes_each_version_in_force_once_and_sends_the_last_again_at_start(any_settings):
    store = await _store(any_settings, "router", router_tables)
    try:
        first_id, first, _ = await router.import_directory(store, DEMO_CITY.read_text(encoding="utf-8"), by="test")
        [(envelope, sent)] = await _published(store)  # owed by the import itself
        assert not await router.publish_directory(store, first_id, first)  # the reload loop asks again: nothing more
        assert len(await _published(store)) == 1
        assert envelope.ticket_id == DIRECTORY_ID and not sent
        payload = envelope.parsed()
        assert (payload.version, payload.version_id) == ("2026.1", first_id)
        assert {s.code for d in payload.districts if d.code == "D-01" for s in d.streets} >= {"S-01-03"}
        assert not hasattr(payload, "units")  # the public part only

        async with store.db.session() as s:  # the relay sent it; the broker then lost it (a restart)
            await s.execute(update(store.tables.outbox).values(sent_at=dt.datetime.now(dt.UTC)))
        assert not await router.publish_directory(store, first_id, first, resend=True)
        [(again, sent)] = await _published(store)
        assert again.event_id == envelope.event_id and not sent  # the same event, owed again

        second_id, second, _ = await router.import_directory(store, next_version(), by="cli")
        assert not await router.publish_directory(store, second_id, second)  # owed by the import
        assert not await router.publish_directory(store, first_id, first)  # an instance that has not reloaded yet
        *_, (latest, _) = await _published(store)
        assert latest.parsed().version_id == second_id
        assert "CM.ORDER.BIKES" in {c.code for c in latest.parsed().categories}

        async with store.db.session() as s:  # a version written without its event (an older router, by hand)
            third_id = (await s.execute(directory_versions.insert().values(
                version="2026.3", content=next_version(), summary="", imported_by="sql",
                imported_at=dt.datetime.now(dt.UTC)))).inserted_primary_key[0]
        assert await router.publish_directory(store, third_id, second)  # the start or the reload loop owes it
        assert [e.parsed().version_id for e, _ in await _published(store)] == [first_id, second_id, third_id]
    finally:
        await store.db.dispose()


def _event(version: str, version_id: int, activated_at: dt.datetime, categories: list[str]) -> DirectoryPublished:
    return DirectoryPublished(
        version=version, version_id=version_id, activated_at=activated_at,
        districts=[PublicDistrict(code="D-01", name="临江区", streets=[PublicStreet(code="S-01-03", name="解放路街道")])],
        categories=[PublicCategory(code=code, name=code) for code in categories])


async def test_intake_keeps_the_newest_directory_whatever_order_the_versions_arrive_in(any_settings):
    store = await _store(any_settings, "intake", intake_tables)
    at = dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC)
    older, newer = _event("v1", 1, at, ["CM"]), _event("v2", 2, at + dt.timedelta(minutes=5), ["CM", "PU"])
    try:
        assert await intake.stored_places(store) is None  # nothing published yet: bootstrap uses the file
        async def apply(payload):
            async with store.transaction() as tx:
                await intake.on_directory_published(
                    tx, Envelope.wrap(payload, ticket_id=DIRECTORY_ID, producer="router"), payload,
                    local=store.local)

        for payload in (newer, older, newer):  # the newer overtook the older one, then came again
            await apply(payload)
            kept = await intake.stored_places(store)
            assert (kept.version, store.local[intake.PLACES].version) == ("v2", "v2")
        assert set(kept.category_names) == {"CM", "PU"}
        assert await intake.stored_places_activated_at(store) == newer.activated_at
        async with store.db.session() as s:
            assert await s.scalar(select(func.count()).select_from(intake_directory)) == 1
    finally:
        await store.db.dispose()


def test_jiesu_directory_import_owes_the_new_version_to_intake_at_once(sqlite_settings, tmp_path):
    """A running router's relay sends it within a second; its reload loop would publish it only within 10 s."""
    upgrade("router", sqlite_settings.database_url("router"))
    for version, text in (("2026.1", DEMO_CITY.read_text(encoding="utf-8")), ("2026.2", next_version())):
        path = tmp_path / f"{version}.yaml"
        path.write_text(text, encoding="utf-8")
        assert directory_command(argparse.Namespace(action="import", file=str(path)), sqlite_settings) == 0

    async def published():
        store = ServiceStore("router", Database(sqlite_settings.database_url("router")), router_tables)
        try:
            return [e.parsed().version for e, _ in await _published(store)]
        finally:
            await store.db.dispose()
    assert asyncio.run(published()) == ["2026.1", "2026.2"]


async def test_a_directory_put_in_force_on_the_admin_page_is_owed_to_intake_when_the_page_answers(
        sqlite_settings, migrated_sqlite):
    """The router here runs no reload loop and no relay: only the page's own transaction can have owed it."""
    async with serving(sqlite_settings, migrated_sqlite, ["router"]) as app:
        await app.state.runtime.identity.create_user("root", PASSWORD, Role.ADMIN, display_name="管理员")
        store = app.state.runtime.store("router")
        assert [e.parsed().version for e, _ in await _published(store)] == ["2026.1"]  # the first start's
        async with logged_in(app, "root", "/router/directory") as (client, token):
            r = await client.post("/router/directory", data={"csrf_token": token, "content": next_version()},
                                  headers=BROWSER)
        assert r.status_code == 200 and "已启用版本 2026.2" in r.text
        *_, (latest, sent) = await _published(store)
        assert (latest.parsed().version, latest.parsed().version_id, sent) == (
            "2026.2", app.state.runtime.state["router"].directory_version_id, False)
        assert len(await _published(store)) == 2


async def test_a_directory_imported_while_running_reaches_open311_by_the_relay_not_the_reload(live):
    store, state = live.runtime.store("router"), live.runtime.state["router"]
    version_id, directory, _ = await router.import_directory(store, next_version(), by="admin")
    state.directory_version_id, state.directory = version_id, directory  # as the page's POST does

    async def listed():
        async with httpx.AsyncClient(base_url=live.url) as client:
            services = (await client.get("/open311/v2/services.json")).json()
        return "CM.ORDER.BIKES" in {s["service_code"] for s in services}
    assert await wait_for(listed, timeout=5.0)  # the reload loop would take 10 s


async def test_intake_starts_on_the_directory_file_until_the_router_has_published_one(sqlite_settings, tmp_path):
    from jiesu.runtime import Runtime
    from services.intake.bootstrap import SPEC

    path = tmp_path / "city.yaml"
    path.write_text(next_version(), encoding="utf-8")
    settings = sqlite_settings.model_copy(update={"directory_file": path})
    store = await _store(settings, "intake", intake_tables)
    rt = Runtime.create(settings, ["intake"], bootstrap="127.0.0.1:9")
    try:
        await SPEC.setup(rt)
        places = rt.store("intake").local[intake.PLACES]
        assert places.version == "2026.2" and "CM.ORDER.BIKES" in places.category_names  # the file's

        published = _event("v9", 9, dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC), ["CM"])
        async with store.transaction() as tx:
            await intake.on_directory_published(tx, Envelope.wrap(published, ticket_id=DIRECTORY_ID,
                                                                  producer="router"), published)
        await SPEC.setup(rt)  # a restart: what the router published wins over the file
        assert set(rt.store("intake").local[intake.PLACES].category_names) == {"CM"}
    finally:
        await store.db.dispose()
        await rt.close()


async def test_an_intake_process_uses_the_directory_another_one_took_from_the_router(sqlite_settings, monkeypatch):
    from jiesu.runtime import Runtime
    from services.intake import bootstrap

    monkeypatch.setattr(bootstrap, "DIRECTORY_RELOAD_SECONDS", 0.05)
    other = await _store(sqlite_settings, "intake", intake_tables)  # the process that consumed the event
    rt = Runtime.create(sqlite_settings, ["intake"], bootstrap="127.0.0.1:9")
    await bootstrap.SPEC.setup(rt)
    [follow] = [job for job in bootstrap.SPEC.background(rt) if job.__name__ == "follow_directory"]
    task = asyncio.create_task(follow())
    try:
        published = _event("v9", 9, dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC), ["CM"])
        async with other.transaction() as tx:
            await intake.on_directory_published(tx, Envelope.wrap(published, ticket_id=DIRECTORY_ID,
                                                                  producer="router"), published, local=other.local)

        async def taken():
            return rt.store("intake").local[intake.PLACES].version == "v9"
        assert await wait_for(taken, timeout=5.0)
    finally:
        task.cancel()
        await other.db.dispose()
        await rt.close()


@pytest.fixture
async def operator(live):
    token = await live.user("op", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def open311_report(api_key: str, code: str) -> dict:
    return {"api_key": api_key, "service_code": code, "address_string": "解放路18号",
            "description": "共享单车堆满人行道\n走不过去。", "phone": "13800138000"}


async def test_open311_lists_and_accepts_the_categories_of_the_directory_imported_while_running(live, tmp_path):
    api_key = await live.user("fixmystreet", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=live.url) as client:
        codes = {s["service_code"] for s in (await client.get("/open311/v2/services.json")).json()}
        assert "CM.ORDER.ADS" in codes and "CM.ORDER.BIKES" not in codes
        refused = await client.post("/open311/v2/requests.json", data=open311_report(api_key, "CM.ORDER.BIKES"))
        assert refused.status_code == 404

        path = tmp_path / "city.yaml"
        path.write_text(next_version(), encoding="utf-8")
        args = argparse.Namespace(action="import", file=str(path))
        assert await asyncio.to_thread(directory_command, args, live.settings) == 0  # jiesu directory import

        async def listed():
            services = (await client.get("/open311/v2/services.json")).json()
            return [s for s in services if s["service_code"] == "CM.ORDER.BIKES"]
        [bikes] = await wait_for(listed, timeout=10.0)  # within the relay's poll, not the router's 10 s reload
        assert bikes["service_name"] == "共享单车乱停放" and bikes["group"] == "城市管理"
        pickers = (await client.get("/api/v1/intake/directory", headers={"Authorization": f"Bearer {api_key}"})).json()
        assert {"code": "CM.ORDER.BIKES", "name": "共享单车乱停放", "parent": "CM.ORDER"} in pickers["categories"]
        assert (pickers["version"], pickers["city"]) == ("2026.2", "江城市")
        assert all(d["streets"] for d in pickers["districts"])
        definition = await client.get("/open311/v2/services/CM.ORDER.BIKES.json")
        assert definition.status_code == 200
        accepted = await client.post("/open311/v2/requests.json", data=open311_report(api_key, "CM.ORDER.BIKES"))
        assert accepted.status_code == 201, accepted.text


async def test_a_street_outside_the_district_given_is_refused_on_every_way_in_and_nothing_is_recorded(
        live, operator):
    wrong = {"district": "D-02", "street": "S-01-03", "address": "解放路18号"}  # 解放路街道 is in 临江区 (D-01)
    r = await operator.post("/api/v1/intake/tickets", json=call(location=wrong), headers={"Idempotency-Key": "c-1"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    [field] = error["fields"]
    assert field["field"] == "location.street"
    assert "解放路街道（S-01-03）属于临江区（D-01），不在东湖区（D-02）" in field["zh"]
    assert "street S-01-03 is in district D-01, not in D-02" in field["en"]
    assert "location.street" in error["message"]

    portal = await live.user("portal", Role.OPERATOR)
    message = await operator.post("/api/v1/intake/messages", json=call(location=wrong),
                                  headers={"Authorization": f"Bearer {portal}"})
    assert message.status_code == 422 and message.json()["error"]["fields"][0]["field"] == "location.street"

    async with live.runtime.store("intake").db.session() as s:
        assert await s.scalar(select(func.count()).select_from(tickets)) == 0

    # The same call put right is a new ticket under the same key: the refusal kept nothing.
    right = await operator.post("/api/v1/intake/tickets", json=call(location={**wrong, "district": "D-01"}),
                                headers={"Idempotency-Key": "c-1"})
    assert right.status_code == 201
    street_only = await operator.post("/api/v1/intake/tickets", json=call(location={"street": "S-01-03"}))
    assert street_only.status_code == 201  # the router places it in the street's district


async def test_codes_the_routers_directory_lacks_are_refused_once_intake_has_it_and_nothing_is_recorded(
        live, operator):
    intake_store = live.runtime.store("intake")
    unknown = call(location={"district": "D-99", "street": "S-99-01", "address": "解放路18号"}, category="XX.NOPE")

    async def published():
        return intake_store.local[intake.PLACES].published
    await wait_for(published, timeout=10.0)
    r = await operator.post("/api/v1/intake/tickets", json=unknown, headers={"Idempotency-Key": "c-2"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    assert [(f["field"], f["zh"]) for f in error["fields"]] == [
        ("location.district", "部门目录中没有区代码 D-99，请从列表中重新选择"),
        ("location.street", "部门目录中没有街道代码 S-99-01，请从列表中重新选择"),
        ("category", "部门目录中没有类别代码 XX.NOPE，请从列表中重新选择")]
    assert "the directory has no category with code XX.NOPE" in error["message"]
    async with intake_store.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(tickets)) == 0

    known = call(location={"district": "D-01", "street": "S-01-03", "address": "解放路18号"}, category="CM.ORDER.ADS")
    right = await operator.post("/api/v1/intake/tickets", json=known, headers={"Idempotency-Key": "c-2"})
    assert right.status_code == 201
