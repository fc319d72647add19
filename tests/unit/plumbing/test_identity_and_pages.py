"""Log-in, roles, tokens and CSRF, on the real app without the broker."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from jiesu.migrate import upgrade_all
from schemas.enums import Role


@pytest.fixture
async def app(sqlite_settings):
    await asyncio.to_thread(upgrade_all, sqlite_settings)
    from jiesu.runtime import Runtime
    from jiesu.web import create_app
    from jiesu.runtime import load_spec

    routers = [r for n in ("intake", "router", "tracker") for r in load_spec(n).routers]
    rt = Runtime.create(sqlite_settings, ["intake", "router", "tracker"], bootstrap="unused:9092")
    for spec in rt.specs.values():
        await spec.setup(rt)
    application = create_app(lambda: rt, routers, start=False)
    async with application.router.lifespan_context(application):
        await rt.identity.create_user("op", "correct-horse", Role.OPERATOR, display_name="话务员")
        await rt.identity.create_user("dept", "correct-horse", Role.DEPARTMENT, department="M-CGW")
        yield application
    for store in rt.stores.values():
        await store.db.dispose()
    await rt.identity.db.dispose()


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jiesu.test")


async def test_passwords_are_stored_as_argon2id_hashes(app):
    store = app.state.runtime.identity
    from sqlalchemy import select

    from jiesu.identity import UserRow

    async with store.db.session() as s:
        row = await s.scalar(select(UserRow).where(UserRow.username == "op"))
    assert row.password_hash.startswith("$argon2id$") and "correct-horse" not in row.password_hash
    assert await store.authenticate("op", "correct-horse") is not None
    assert await store.authenticate("op", "wrong") is None
    assert await store.authenticate("nobody", "correct-horse") is None


async def test_department_staff_must_be_bound_to_a_department(app):
    with pytest.raises(ValueError):
        await app.state.runtime.identity.create_user("x", "long-enough", Role.DEPARTMENT)


async def test_login_sets_a_session_and_pages_need_it(app):
    async with client(app) as c:
        r = await c.get("/tracker/tickets")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        r = await c.post("/login", data={"username": "op", "password": "wrong", "next": "/"})
        assert "用户名或密码错误" in r.text
        r = await c.post("/login", data={"username": "op", "password": "correct-horse", "next": "/tracker/tickets"})
        assert r.status_code == 303 and r.headers["location"] == "/tracker/tickets"
        page = await c.get("/tracker/tickets")
        assert page.status_code == 200 and "工单列表" in page.text
        assert page.headers["x-frame-options"] == "DENY"


async def test_forms_posted_without_the_csrf_token_are_refused(app):
    async with client(app) as c:
        await c.post("/login", data={"username": "op", "password": "correct-horse"})
        r = await c.post("/api/v1/intake/tickets", json={"kind": "help", "subject": "s", "description": "d"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"


async def test_bearer_tokens_identify_machine_clients_and_revoked_ones_fail(app):
    token = await app.state.runtime.identity.create_token("op", "portal")
    async with client(app) as c:
        me = await c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["role"] == "operator"
        bad = await c.get("/api/v1/me", headers={"Authorization": "Bearer jst_nope"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_token"


async def test_a_token_revoked_in_this_process_is_refused_at_once_though_it_was_cached(app):
    identity = app.state.runtime.identity
    token = await identity.create_token("op", "portal")
    headers = {"Authorization": f"Bearer {token}"}
    async with client(app) as c:
        assert (await c.get("/api/v1/me", headers=headers)).status_code == 200
        assert await identity.revoke_token(token)
        r = await c.get("/api/v1/me", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    assert not await identity.revoke_token(token)


async def test_a_token_revoked_elsewhere_is_refused_once_the_cached_look_up_expires(app, monkeypatch):
    from sqlalchemy import update

    from jiesu import identity as identity_module
    from jiesu.identity import ApiTokenRow, token_hash

    monkeypatch.setattr(identity_module, "TOKEN_CACHE_SECONDS", 0.2)
    identity = app.state.runtime.identity
    token = await identity.create_token("op", "portal")
    assert await identity.user_for_token(token) is not None
    async with identity.db.session() as s:  # another process, or an administrator in the database
        await s.execute(update(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash(token))
                        .values(revoked_at=identity_module.utcnow()))
    assert await identity.user_for_token(token) is not None  # the revocation lag
    await asyncio.sleep(0.25)
    assert await identity.user_for_token(token) is None


async def test_a_burst_of_requests_with_one_token_costs_one_database_look_up(app):
    from sqlalchemy import event

    identity = app.state.runtime.identity
    token = await identity.create_token("op", "portal")
    statements: list[str] = []
    event.listen(identity.db.engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: statements.append(statement))
    users = await asyncio.gather(*(identity.user_for_token(token) for _ in range(20)))
    assert {u.username for u in users} == {"op"}
    assert sum("identity_api_tokens" in s and s.lstrip().upper().startswith("SELECT") for s in statements) == 1


async def test_login_redirect_never_leaves_the_site(app):
    async with client(app) as c:
        r = await c.post("/login", data={"username": "op", "password": "correct-horse", "next": "//evil.example"})
        assert r.headers["location"] == "/"


async def test_password_guessing_is_throttled_even_with_the_right_password_afterwards(app):
    async with client(app) as c:
        for _ in range(5):
            r = await c.post("/login", data={"username": "op", "password": "guess"})
            assert r.status_code == 401
        r = await c.post("/login", data={"username": "op", "password": "correct-horse"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "登录失败次数过多" in r.text
    # Another account is not locked by it.
    async with client(app) as c:
        r = await c.post("/login", data={"username": "dept", "password": "correct-horse"})
        assert r.status_code == 303


async def test_a_successful_log_in_clears_earlier_failures(app):
    async with client(app) as c:
        for _ in range(4):
            await c.post("/login", data={"username": "op", "password": "guess"})
        assert (await c.post("/login", data={"username": "op", "password": "correct-horse"})).status_code == 303
        for _ in range(4):
            assert (await c.post("/login", data={"username": "op", "password": "guess"})).status_code == 401
        assert (await c.post("/login", data={"username": "op", "password": "correct-horse"})).status_code == 303
