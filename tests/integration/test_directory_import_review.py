"""Importing the department directory (部门目录) as an admin does it day to day: saving it unchanged writes nothing,
every version in force is told apart by its id, a unit that still handles open tickets is not removed without
the admin confirming it, and a YAML error says the parser's text once."""

from __future__ import annotations

import argparse
import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from jiesu.db import Database
from jiesu.messaging import ServiceStore
from jiesu.migrate import upgrade
from schemas.enums import Role
from services.router import service
from services.router.cli import directory_command
from services.router.domain.directory import DEMO_CITY, Directory, DirectoryError
from services.router.store import directory_versions, messaging
from tests.integration.test_page_errors import BROWSER, PASSWORD, logged_in, serving
from tests.unit.router.test_routing_service import route

CULTURE = ("  - {code: M-WLJ, name: 市文化和旅游局, type: municipal, aliases: [文旅局, 文化局, 旅游局], "
           "responsibilities: [ED.CULTURE]}\n")
VAGUE = "有个事情想反映一下，具体说不清楚。"


def demo() -> str:
    return DEMO_CITY.read_text(encoding="utf-8")


def without_culture() -> str:
    assert CULTURE in demo()
    return demo().replace(CULTURE, "")


@pytest.fixture
def store(router_store):
    return router_store


async def counts(store) -> tuple[int, int]:
    """(directory versions written, DirectoryPublished owed)."""
    outbox = store.tables.outbox
    async with store.db.session() as s:
        return (await s.scalar(select(func.count()).select_from(directory_versions)),
                await s.scalar(select(func.count()).select_from(outbox)
                               .where(outbox.c.event_type == "DirectoryPublished")))


async def ticket_led_by(store, unit: str, directory: Directory) -> str:
    """A ticket a dispatcher gave to `unit`, waiting for it to sign for it (待签收)."""
    state = service.RouterState(directory=directory, phone_key=b"test-key")
    envelope, emitted = await route(store, state, VAGUE)
    assert emitted[0].event_type == "DispatchNeeded"
    _, number = await service.dispatch(store, state, envelope.ticket_id, unit_code=unit, co_handlers=[],
                                       category=None, by="dispatcher1")
    return number


# --- a. saving without a change ---------------------------------------------------------------


async def test_saving_the_directory_in_force_again_writes_no_version_and_owes_nothing(store):
    first_id, _, _ = await service.import_directory(store, demo(), by="system")  # the first start
    assert await counts(store) == (1, 1)
    with pytest.raises(service.DirectoryUnchanged) as same:
        await service.import_directory(store, demo().replace("\n", "\r\n"), by="admin")  # as a browser sends it
    assert same.value.version_id == first_id and not same.value.text_differs
    assert await counts(store) == (1, 1)


async def test_a_comment_only_edit_is_the_same_content_and_says_so(store):
    await service.import_directory(store, demo(), by="system")
    with pytest.raises(service.DirectoryUnchanged) as same:
        await service.import_directory(store, "# 备注：仅改注释\n" + demo(), by="admin")
    assert same.value.text_differs
    assert await counts(store) == (1, 1)


async def test_a_new_version_label_alone_is_a_change_and_says_which(store):
    await service.import_directory(store, demo(), by="system")
    _, _, summary = await service.import_directory(store, demo().replace('version: "2026.1"', 'version: "2026.2"'),
                                                   by="admin")
    assert summary == "版本号：2026.1 → 2026.2"
    assert await counts(store) == (2, 2)


def test_jiesu_directory_import_of_the_same_file_imports_nothing(sqlite_settings, tmp_path, capsys):
    upgrade("router", sqlite_settings.database_url("router"))
    path = tmp_path / "city.yaml"
    path.write_text(demo(), encoding="utf-8")
    args = argparse.Namespace(action="import", file=str(path))
    assert directory_command(args, sqlite_settings) == 0
    assert "已导入版本 2026.1 · #1" in capsys.readouterr().out
    assert directory_command(args, sqlite_settings) == 0
    assert "内容与现行版本（2026.1 · #1）相同，未新建版本" in capsys.readouterr().out

    async def written():
        s = ServiceStore("router", Database(sqlite_settings.database_url("router")), messaging)
        try:
            return await counts(s)
        finally:
            await s.db.dispose()
    assert asyncio.run(written()) == (1, 1)


# --- d. a YAML syntax error -------------------------------------------------------------------


async def test_a_yaml_syntax_error_gives_the_parsers_text_once(store):
    with pytest.raises(DirectoryError) as error:
        await service.import_directory(store, "version: [unclosed", by="admin")
    message = str(error.value)
    assert message.startswith("YAML 格式错误 / not valid YAML:\n")
    assert message.count("expected ',' or ']'") == 1


# --- c. removing a unit that still handles open tickets -----------------------------------------


async def test_removing_a_unit_that_leads_an_open_ticket_is_refused_naming_the_unit_and_the_ticket(store):
    _, directory, _ = await service.import_directory(store, demo(), by="system")
    number = await ticket_led_by(store, "M-WLJ", directory)
    with pytest.raises(service.UnitsStillHandling) as refused:
        await service.import_directory(store, without_culture(), by="admin")
    assert f"单位 M-WLJ（市文化和旅游局）仍有 1 件在办工单：{number}" in str(refused.value)
    assert "请先让这些工单办结或退回改派" in str(refused.value)
    assert await counts(store) == (1, 1)

    _, _, summary = await service.import_directory(store, without_culture(), by="admin",
                                                   remove_units_with_open_work=True)  # the admin confirmed
    assert summary == "删除单位 1：M-WLJ"


async def test_a_unit_whose_tickets_are_closed_is_removed_without_asking(store):
    from schemas.events import Envelope, TicketClosed

    _, directory, _ = await service.import_directory(store, demo(), by="system")
    await ticket_led_by(store, "M-WLJ", directory)
    async with store.db.session() as s:
        [ticket_id] = (await s.execute(select(service.decisions.c.ticket_id))).scalars().all()
    closed = Envelope.wrap(TicketClosed(outcome="satisfied"), ticket_id=uuid.UUID(str(ticket_id)), producer="tracker")
    async with store.transaction() as tx:
        await service.on_closed(tx, closed, closed.parsed())
    _, _, summary = await service.import_directory(store, without_culture(), by="admin")
    assert summary == "删除单位 1：M-WLJ"


# --- the page: a, b, c as the admin sees them ---------------------------------------------------


async def test_the_directory_page_as_an_admin_uses_it(sqlite_settings, migrated_sqlite):
    async with serving(sqlite_settings, migrated_sqlite, ["router"]) as app:
        await app.state.runtime.identity.create_user("root", PASSWORD, Role.ADMIN, display_name="管理员")
        store = app.state.runtime.store("router")
        async with logged_in(app, "root", "/router/directory") as (client, token):
            page = await client.get("/router/directory", headers=BROWSER)
            assert "版本 2026.1 · #1" in page.text

            same = await client.post("/router/directory", data={"csrf_token": token, "content": demo()},
                                     headers=BROWSER)
            assert same.status_code == 200
            assert "内容与现行版本（2026.1 · #1）相同，未新建版本" in same.text
            assert await counts(store) == (1, 1)

            await ticket_led_by(store, "M-WLJ", app.state.runtime.state["router"].directory)
            refused = await client.post("/router/directory", data={"csrf_token": token, "content": without_culture()},
                                        headers=BROWSER)
            assert "单位 M-WLJ（市文化和旅游局）仍有 1 件在办工单" in refused.text
            assert 'name="remove_units_with_open_work"' in refused.text
            assert await counts(store) == (1, 1)

            confirmed = await client.post("/router/directory", headers=BROWSER, data={
                "csrf_token": token, "content": without_culture(), "remove_units_with_open_work": "true"})
            assert "已启用版本 2026.1 · #2：删除单位 1：M-WLJ" in confirmed.text
            assert "（现行）" in confirmed.text and await counts(store) == (2, 2)

            rules = await client.get("/router/rules", headers=BROWSER)
            assert "目录版本 2026.1 · #2" in rules.text

            broken = await client.post("/router/directory", data={"csrf_token": token,
                                                                  "content": "version: [unclosed"}, headers=BROWSER)
            assert broken.text.count("expected &#39;,&#39; or &#39;]&#39;") == 1
