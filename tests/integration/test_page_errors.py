"""A refusal on a page answers a person with a page; scripts and machine clients keep the JSON error.

A person's browser that navigates or posts a plain form asks for HTML and gets the error as a page in the
common layout, with the same status, the message in Chinese and English, and what to do. API paths, htmx,
the pages' own fetch calls and token clients get the JSON body the README's "Errors" documents, unchanged.
The router's and tracker's pages in this process, without the broker.
"""

from __future__ import annotations

import contextlib
import re
import uuid

import httpx
import pytest

from schemas.enums import Role
from tests.conftest import copy_migrated

PASSWORD = "page-errors-1"
BASE = "http://jiesu.test"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
STALE_FORM = {"code": "csrf_failed", "message": "页面已过期，请刷新后重试 / The form has expired; reload the page and retry",
              "zh": "页面已过期，请刷新后重试", "en": "The form has expired; reload the page and retry"}
FORBIDDEN = {"code": "forbidden", "message": "您的角色无权执行此操作 / Your role may not do this",
             "zh": "您的角色无权执行此操作", "en": "Your role may not do this"}


@contextlib.asynccontextmanager
async def serving(settings, migrated, services: list[str]):
    """These services' pages and APIs in this process (no broker), with a dispatcher `disp` and a department
    user `dept` of M-CGW."""
    import asyncio

    from jiesu.migrate import upgrade_all
    from jiesu.runtime import Runtime, load_spec
    from jiesu.web import create_app

    copy_migrated(settings, migrated)
    await asyncio.to_thread(upgrade_all, settings)
    application = create_app(lambda: Runtime.create(settings, services, bootstrap="unused:9092"),
                             [r for n in services for r in load_spec(n).routers], start=False, prepare=True)
    async with application.router.lifespan_context(application):
        identity = application.state.runtime.identity
        await identity.create_user("disp", PASSWORD, Role.DISPATCHER, display_name="派单员小王")
        await identity.create_user("dept", PASSWORD, Role.DEPARTMENT, department="M-CGW", display_name="城管李科长")
        yield application


@pytest.fixture
async def app(sqlite_settings, migrated_sqlite):
    async with serving(sqlite_settings, migrated_sqlite, ["router", "tracker"]) as application:
        yield application


@contextlib.asynccontextmanager
async def logged_in(app, username: str, next_page: str, *, raise_app_exceptions: bool = True):
    """A browser without script, logged in, on `next_page`; yields the client and that page's form token."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        r = await client.post("/login", data={"username": username, "password": PASSWORD, "next": next_page})
        assert r.status_code == 303, r.text
        here = await client.get(next_page, headers=BROWSER)
        assert here.status_code == 200, here.text
        yield client, re.search(r'name="csrf_token" value="([^"]+)"', here.text).group(1)


async def log_in_again(client: httpx.AsyncClient, username: str) -> None:
    """The same person logs in again in another tab: a new session, and every open form's token goes stale."""
    r = await client.post("/login", data={"username": username, "password": PASSWORD, "next": "/"})
    assert r.status_code == 303


def links(html: str) -> dict[str, str]:
    """The error page's links: text → href."""
    section = re.search(r'<section class="card error-page".*?</section>', html, re.S).group(0)
    return {text: href for href, text in re.findall(r'<a[^>]*href="([^"]*)"[^>]*>([^<]+)</a>', section)}


# -- a stale form (CSRF) ------------------------------------------------------------------------------------


async def test_a_stale_form_posted_from_a_page_answers_with_a_page_that_leads_back_to_it(app):
    async with logged_in(app, "disp", "/router/dispatch") as (client, token):
        await log_in_again(client, "disp")
        r = await client.post(f"/router/dispatch/{uuid.uuid4()}", data={"csrf_token": token, "unit": "M-CGW"},
                              headers={**BROWSER, "Referer": f"{BASE}/router/dispatch"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "页面已过期，请刷新后重试" in r.text and "The form has expired; reload the page and retry" in r.text
    assert "请返回上一页并刷新后重试" in r.text
    assert links(r.text)["返回上一页"] == "/router/dispatch"
    assert '<header class="top">' in r.text and "派单员小王" in r.text  # the common layout, still logged in
    assert '"error"' not in r.text


async def test_a_stale_form_without_a_referer_of_this_site_leads_home_never_to_another_site(app):
    async with logged_in(app, "disp", "/router/dispatch") as (client, token):
        await log_in_again(client, "disp")
        r = await client.post(f"/router/dispatch/{uuid.uuid4()}", data={"csrf_token": token, "unit": "M-CGW"},
                              headers={**BROWSER, "Referer": "https://evil.example/router/dispatch"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert links(r.text) == {"返回首页": "/"}


@pytest.mark.parametrize("path, headers", [
    ("/api/v1/router/tickets/{id}/dispatch", BROWSER),  # an API path, whatever the client asks for
    ("/router/dispatch/{id}", {"Accept": "application/json"}),
    ("/router/dispatch/{id}", {**BROWSER, "HX-Request": "true"}),  # htmx
    ("/router/dispatch/{id}", {}),  # a script's fetch asks for */*
], ids=["api-path", "accept-json", "htmx", "fetch"])
async def test_a_stale_form_token_sent_by_a_script_or_to_the_api_gets_the_json_error_as_before(app, path, headers):
    async with logged_in(app, "disp", "/router/dispatch") as (client, token):
        await log_in_again(client, "disp")
        r = await client.post(path.format(id=uuid.uuid4()), data={"csrf_token": token, "unit": "M-CGW"},
                              headers={**headers, "Referer": f"{BASE}/router/dispatch"})
    assert r.status_code == 403 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error": STALE_FORM}


async def test_the_pages_own_fetch_with_a_stale_x_csrf_token_gets_json_though_it_accepts_html(app):
    async with logged_in(app, "disp", "/router/dispatch") as (client, token):
        await log_in_again(client, "disp")
        r = await client.post(f"/router/dispatch/{uuid.uuid4()}", data={"unit": "M-CGW"},
                              headers={**BROWSER, "X-CSRF-Token": token})
    assert r.status_code == 403 and r.json() == {"error": STALE_FORM}


# -- a role refusal -----------------------------------------------------------------------------------------


async def test_a_page_the_role_may_not_open_answers_with_a_page_naming_the_role_and_the_ways_out(app):
    async with logged_in(app, "dept", "/tracker/inbox") as (client, _):
        r = await client.get("/router/dispatch", headers={**BROWSER, "Referer": f"{BASE}/tracker/inbox"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "您的角色无权执行此操作" in r.text and "Your role may not do this" in r.text
    assert "您当前以“承办单位”角色登录" in r.text
    ways = links(r.text)
    assert ways["返回我的首页"] == "/" and ways["返回上一页"] == "/tracker/inbox"
    assert ways["切换账号"] == "/login?next=/router/dispatch"  # log in as someone who may, and land here
    assert '<header class="top">' in r.text and "城管李科长" in r.text


async def test_a_form_the_role_may_not_post_answers_with_a_page_whose_switch_link_returns_to_the_form(app):
    async with logged_in(app, "dept", "/tracker/inbox") as (client, token):
        r = await client.post("/router/rules", data={"csrf_token": token, "subject": "路灯不亮"},
                              headers={**BROWSER, "Referer": f"{BASE}/router/rules"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "您当前以“承办单位”角色登录" in r.text
    assert links(r.text)["切换账号"] == "/login?next=/router/rules"


async def test_a_role_refusal_on_the_api_stays_json_for_a_session_and_for_a_token(app):
    token = await app.state.runtime.identity.create_token("dept", "test")
    async with logged_in(app, "dept", "/tracker/inbox") as (client, _):
        by_session = await client.get("/api/v1/router/queue", headers=BROWSER)
        asks_json = await client.get("/router/dispatch", headers={"Accept": "application/json"})
        client.cookies.clear()
        by_token = await client.get("/router/dispatch", headers={**BROWSER, "Authorization": f"Bearer {token}"})
    for r in (by_session, asks_json, by_token):
        assert r.status_code == 403 and r.json() == {"error": FORBIDDEN}, r.text


# -- other refusals on pages --------------------------------------------------------------------------------


async def test_a_ticket_the_user_may_not_see_answers_a_page_with_404_and_the_api_json(app):
    async with logged_in(app, "dept", "/tracker/inbox") as (client, _):
        as_page = await client.get("/tracker/tickets/12345-20991231-999999", headers=BROWSER)
        as_api = await client.get("/api/v1/tracker/tickets/12345-20991231-999999", headers=BROWSER)
        no_such_page = await client.get("/tracker/no-such-page", headers=BROWSER)
    assert as_page.status_code == 404 and as_page.headers["content-type"].startswith("text/html")
    assert "未找到工单 12345-20991231-999999" in as_page.text and "请核对链接或编号后重试" in as_page.text
    assert as_api.status_code == 404 and as_api.json()["error"]["code"] == "ticket_not_found"
    assert no_such_page.status_code == 404 and "<h1>未找到</h1>" in no_such_page.text


async def test_an_invalid_field_in_a_form_posted_without_script_answers_a_page_listing_it(app):
    async with logged_in(app, "disp", "/router/rules") as (client, token):
        form = {"csrf_token": token, "subject": "路灯不亮", "channel": "pigeon"}
        as_page = await client.post("/router/rules", data=form, headers={**BROWSER, "Referer": f"{BASE}/router/rules"})
        by_htmx = await client.post("/router/rules", data=form, headers={**BROWSER, "HX-Request": "true"})
    assert as_page.status_code == 422 and as_page.headers["content-type"].startswith("text/html")
    assert "<code>channel</code>：不是允许的选项" in as_page.text and "请返回上一页，按上面的提示修改后重新提交" in as_page.text
    assert links(as_page.text)["返回上一页"] == "/router/rules"
    assert by_htmx.status_code == 422 and by_htmx.json()["error"]["code"] == "invalid_input"
    assert by_htmx.json()["error"]["fields"][0]["field"] == "channel"


async def test_a_form_address_opened_as_a_link_answers_a_page_that_keeps_the_allow_header(app):
    async with logged_in(app, "dept", "/tracker/inbox") as (client, _):
        r = await client.get("/tracker/notifications/read", headers={**BROWSER, "Referer": f"{BASE}/tracker/inbox"})
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/html")
    assert r.headers["allow"] == "POST" and "<h1>不支持此操作</h1>" in r.text
    assert links(r.text)["返回上一页"] == "/tracker/inbox"


async def test_a_fault_behind_a_page_answers_a_page_with_500_and_the_api_json(app, monkeypatch):
    from jiesu import errors
    from services.tracker import queries

    async def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    logged: list[str] = []  # for the administrator, instead of the console's long traceback
    monkeypatch.setattr(errors.log, "exception", lambda event, **fields: logged.append(fields["path"]))

    async with logged_in(app, "dept", "/tracker/tickets", raise_app_exceptions=False) as (client, _):
        monkeypatch.setattr(queries, "list_tickets", broken)
        as_page = await client.get("/tracker/tickets", headers=BROWSER)
        as_api = await client.get("/api/v1/tracker/tickets", headers=BROWSER)
    assert as_page.status_code == 500 and as_page.headers["content-type"].startswith("text/html")
    assert "系统内部错误" in as_page.text and "请稍后重试；如仍失败，请联系管理员。" in as_page.text
    assert "the database went away" not in as_page.text
    assert as_api.status_code == 500 and as_api.json()["error"]["code"] == "internal_error"
    assert logged == ["/tracker/tickets", "/api/v1/tracker/tickets"]
