"""Where each person lands: the admin on the department directory, a citizen who opens the site's root on a
login page that sends them on to the public pages, which need no log-in."""

from __future__ import annotations

import re

import httpx

from schemas.enums import Role


async def test_the_admin_lands_on_the_department_directory(live):
    await live.user("adm", Role.ADMIN)
    async with httpx.AsyncClient(base_url=live.url) as client:
        await client.post("/login", data={"username": "adm", "password": "demo-password-1", "next": "/"})
        r = await client.get("/", follow_redirects=True)
    assert r.url.path == "/router/directory", r.url


async def test_a_citizen_at_the_root_finds_the_public_pages_from_the_login_page(live):
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.get("/", follow_redirects=True)
        assert r.url.path == "/login"
        links = dict((label, href) for href, label in re.findall(r'<a href="(/intake/[a-z]+)">([^<]+)</a>', r.text))
        assert links == {"市长信箱": "/intake/mailbox", "网上留言": "/intake/online", "办理进度查询": "/intake/progress"}
        for href in links.values():  # each opens without a log-in
            page = await client.get(href)
            assert page.status_code == 200 and page.url.path == href, href
