"""Refusals that reach people read as pages, or move the page; scripts keep reading the JSON error.

A department's staff open a citizen's photo from the ticket page with a link to intake's API that carries a
grant for a few minutes: when it has expired, the browser that opened it is shown a page saying what to do,
while an API client opening the same link still reads the JSON. Someone not logged in is sent to log in when
their browser navigates, is refused with 401 JSON when a script asks, and, when the htmx of a page left open
asks, the browser is told (HX-Redirect) to go to log in from the page it shows.
The intake, router and tracker pages in this process, without the broker.
"""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from jiesu import attachment_grants
from tests.integration.test_page_errors import BASE, BROWSER, PASSWORD, links, logged_in, serving
from tests.pages import spoilt

NUMBER = "12345-20250301-000042"
SHA = hashlib.sha256(b"a citizen's photo").hexdigest()
LINK = f"/api/v1/intake/tickets/{NUMBER}/attachments/{SHA}"
TICKET_PAGE = f"/tracker/tickets/{NUMBER}"
NAVIGATION = {**BROWSER, "Sec-Fetch-Mode": "navigate", "Referer": f"{BASE}{TICKET_PAGE}"}


@pytest.fixture
async def app(sqlite_settings, migrated_sqlite):
    async with serving(sqlite_settings, migrated_sqlite, ["intake", "router", "tracker"]) as application:
        yield application


def expired_grant(app) -> str:
    """The grant the ticket page signed for `dept` eleven minutes ago: its ten minutes are over."""
    now = time.time()
    with pytest.MonkeyPatch.context() as clock:
        clock.setattr(time, "time", lambda: now - 11 * 60)
        return attachment_grants.sign(app.state.runtime.secret, attachment_grants.AttachmentGrant(
            NUMBER, SHA, "dept", "department", "M-CGW"))


def anonymous(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


# -- an attachment's download link ---------------------------------------------------------------------------


async def test_an_expired_download_link_opened_in_the_browser_answers_a_page_that_leads_back_to_the_ticket(app):
    async with logged_in(app, "dept", "/tracker/inbox") as (client, _):
        r = await client.get(LINK, params={"grant": expired_grant(app)}, headers=NAVIGATION)
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "<h1>下载链接已过期，请刷新工单页面后重新下载</h1>" in r.text
    assert "请返回工单页面，重新点击附件的“下载”：页面会为您签发新的下载链接" in r.text
    assert "The download link has expired" in r.text and "issues a fresh one" in r.text
    assert "您的角色无权" not in r.text  # not a role refusal: the same person may download with a fresh link
    assert links(r.text) == {"返回工单页面": TICKET_PAGE, "返回首页": "/"}
    assert '<header class="top">' in r.text and "城管李科长" in r.text
    assert '"error"' not in r.text


async def test_a_download_link_spoilt_in_the_address_bar_answers_a_page_too(app):
    async with logged_in(app, "dept", "/tracker/inbox") as (client, _):
        r = await client.get(LINK, params={"grant": spoilt(expired_grant(app))}, headers=BROWSER)
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "<h1>下载链接无效，请从工单页面重新打开附件</h1>" in r.text and "重新点击附件的“下载”" in r.text
    assert links(r.text) == {"返回首页": "/"}  # typed in: no ticket page to go back to


@pytest.mark.parametrize("headers", [
    {"Accept": "*/*"},  # a script, or curl
    {"Accept": "application/json"},
    {**NAVIGATION, "HX-Request": "true"},
    {**NAVIGATION, "X-CSRF-Token": "the page's token"},  # the pages' own fetch
    {**BROWSER, "Sec-Fetch-Mode": "cors"},  # fetch() asking for HTML
], ids=["any", "accept-json", "htmx", "fetch-csrf", "fetch-mode"])
async def test_an_expired_download_link_fetched_by_a_script_gets_the_json_error(app, headers):
    async with logged_in(app, "dept", "/tracker/inbox") as (client, _):
        r = await client.get(LINK, params={"grant": expired_grant(app)}, headers=headers)
    assert r.status_code == 403 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "grant_expired"


async def test_an_expired_download_link_an_api_client_opens_with_its_token_gets_the_json_error(app):
    token = await app.state.runtime.identity.create_token("dept", "department system")
    async with anonymous(app) as client:
        r = await client.get(LINK, params={"grant": expired_grant(app)},
                             headers={**NAVIGATION, "Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "grant_expired"


async def test_only_the_download_route_answers_browsers_with_pages_the_rest_of_the_api_stays_json(app):
    async with logged_in(app, "dept", "/tracker/inbox") as (client, _):
        r = await client.get(f"/api/v1/intake/tickets/{NUMBER}", headers=NAVIGATION)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_a_download_link_opened_after_the_session_ended_leads_to_log_in_and_back(app):
    grant = expired_grant(app)
    async with anonymous(app) as client:
        browser = await client.get(LINK, params={"grant": grant}, headers=NAVIGATION)
        script = await client.get(LINK, params={"grant": grant}, headers={"Accept": "*/*"})
    assert browser.status_code == 303
    assert httpx.URL(browser.headers["location"]).params["next"] == f"{LINK}?grant={grant}"
    assert script.status_code == 401 and script.json()["error"]["code"] == "login_required"


# -- not logged in: who is sent to log in, and how -------------------------------------------------------------


async def test_a_browser_navigating_without_a_session_is_sent_to_log_in_and_back(app):
    async with anonymous(app) as client:
        r = await client.get("/tracker/inbox", params={"tab": "overdue"},
                             headers={**BROWSER, "Sec-Fetch-Mode": "navigate"})
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/tracker/inbox%3Ftab%3Doverdue"


@pytest.mark.parametrize("path, headers", [
    ("/api/v1/me", BROWSER),  # an API path
    ("/tracker/inbox", {"Accept": "application/json"}),
    ("/tracker/inbox", {"Accept": "*/*", "X-CSRF-Token": "the page's token"}),  # the pages' own fetch
    ("/tracker/inbox", {"Accept": "*/*", "Sec-Fetch-Mode": "cors"}),  # fetch() as the browser sends it
    ("/tracker/inbox", {**BROWSER, "Sec-Fetch-Mode": "same-origin"}),
], ids=["api-path", "accept-json", "fetch-csrf", "fetch-cors", "fetch-same-origin"])
async def test_a_script_without_a_session_or_token_reads_401_json(app, path, headers):
    async with anonymous(app) as client:
        r = await client.get(path, headers=headers)
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "login_required" and r.headers["www-authenticate"] == "Bearer"


async def test_an_api_client_with_a_revoked_token_reads_401_json_even_asking_for_html(app):
    async with anonymous(app) as client:
        r = await client.get("/tracker/inbox", headers={**BROWSER, "Authorization": "Bearer jst_revoked"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


async def test_the_inbox_badge_polled_after_the_session_ended_sends_the_browser_to_log_in_from_the_inbox(app):
    async with anonymous(app) as client:
        r = await client.get("/tracker/badge", headers={
            "Accept": "*/*", "HX-Request": "true", "HX-Current-URL": f"{BASE}/tracker/inbox?tab=overdue"})
    assert r.status_code == 401 and "location" not in r.headers
    assert r.headers["hx-redirect"] == "/login?next=/tracker/inbox%3Ftab%3Doverdue"
    assert r.json()["error"]["zh"] == "登录已过期，请重新登录"


async def test_an_htmx_form_posted_after_the_session_ended_sends_the_browser_to_log_in_from_its_page(app):
    async with anonymous(app) as client:
        r = await client.post("/router/rules", data={"subject": "路灯不亮"}, headers={
            **BROWSER, "HX-Request": "true", "HX-Current-URL": f"{BASE}/router/rules"})
    assert r.status_code == 401 and r.headers["hx-redirect"] == "/login?next=/router/rules"


async def test_htmx_naming_another_sites_page_is_sent_to_log_in_and_then_home(app):
    async with anonymous(app) as client:
        r = await client.get("/tracker/badge", headers={
            "HX-Request": "true", "HX-Current-URL": "https://evil.example/tracker/inbox"})
    assert r.status_code == 401 and r.headers["hx-redirect"] == "/login?next=/"


async def test_a_client_that_does_not_say_what_it_reads_is_still_sent_to_log_in(app):
    async with anonymous(app) as client:
        r = await client.get("/tracker/inbox")  # curl: Accept */*, nothing else
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/tracker/inbox"


async def test_after_logging_in_from_the_htmx_redirect_the_person_lands_on_the_page_they_were_on(app):
    async with anonymous(app) as client:
        r = await client.get("/tracker/badge", headers={
            "HX-Request": "true", "HX-Current-URL": f"{BASE}/tracker/inbox?tab=overdue"})
        login = await client.get(r.headers["hx-redirect"], headers=BROWSER)
        assert 'value="/tracker/inbox?tab=overdue"' in login.text
        r = await client.post("/login", data={"username": "dept", "password": PASSWORD,
                                              "next": "/tracker/inbox?tab=overdue"})
    assert r.status_code == 303 and r.headers["location"] == "/tracker/inbox?tab=overdue"
