"""The authorization matrix: every endpoint and page × every role, against the policy written here.

The policy below is written from what each person's job needs (DESIGN.md, Security), not read
back from the code, so a route that admits the wrong role fails this test. Allowed means the
role gets past authorization (any answer but 401/403); refused means 401 (anonymous) or 403.
A second test walks a real ticket: department staff of another unit can neither read it nor
act on it by any route.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

import httpx
import pytest

from jiesu.config import SERVICES, Settings
from jiesu.migrate import upgrade_all
from jiesu.runtime import Runtime, load_spec
from jiesu.web import create_app
from schemas.enums import Role

O, D, DEP, V, S = Role.OPERATOR, Role.DISPATCHER, Role.DEPARTMENT, Role.VISITOR, Role.SUPERVISOR
READERS = {O, D, DEP, V, S}
LOGGED_IN = READERS
PUBLIC = "public"

# (method, path pattern) → the roles that may use it (admin always may), or PUBLIC.
POLICY: dict[tuple[str, str], set | str] = {
    ("POST", "/api/v1/intake/tickets"): {O},
    ("POST", "/api/v1/intake/messages"): {O},  # portals and apps hold an operator-role API token
    ("POST", "/api/v1/intake/similar"): {O},
    ("GET", "/api/v1/intake/tickets/{number}"): {O},
    ("GET", "/api/v1/intake/directory"): LOGGED_IN,  # places and categories, as the router's directory is
    ("GET", "/api/v1/intake/tickets/{number}/attachments/{sha256}"): {O, D, S},
    ("POST", "/api/v1/intake/progress"): PUBLIC,
    ("GET", "/intake/console"): {O},
    ("POST", "/intake/receipts/{number}/resend"): {O},
    ("POST", "/intake/receipts/resend"): {O},
    ("GET", "/intake/mailbox"): PUBLIC, ("POST", "/intake/mailbox"): PUBLIC,
    ("GET", "/intake/online"): PUBLIC, ("POST", "/intake/online"): PUBLIC,
    ("GET", "/intake/progress"): PUBLIC, ("POST", "/intake/progress"): PUBLIC,
    ("POST", "/api/v1/router/suggest"): {O, D, S},
    ("POST", "/api/v1/router/explain"): {D, S},
    ("GET", "/api/v1/router/directory"): LOGGED_IN,
    ("GET", "/api/v1/router/units"): LOGGED_IN,
    ("GET", "/api/v1/router/queue"): {D, S},
    ("POST", "/api/v1/router/tickets/{ticket_id}/dispatch"): {D},
    ("GET", "/api/v1/router/stats"): {D, S},
    ("GET", "/api/v1/router/directory/export"): set(),
    ("GET", "/router/dispatch"): {D, S}, ("POST", "/router/dispatch/{ticket_id}"): {D},
    ("GET", "/router/rules"): {D, S}, ("POST", "/router/rules"): {D, S},
    ("GET", "/router/stats"): {D, S},
    ("GET", "/router/directory"): set(), ("POST", "/router/directory"): set(),
    ("GET", "/api/v1/tracker/tickets"): READERS,
    ("GET", "/api/v1/tracker/tickets/{ref}"): READERS,
    ("POST", "/api/v1/tracker/tickets/{ref}/sign-for"): {DEP},
    ("POST", "/api/v1/tracker/tickets/{ref}/contact"): {DEP},
    ("POST", "/api/v1/tracker/tickets/{ref}/wait-citizen"): {DEP},
    ("POST", "/api/v1/tracker/tickets/{ref}/defer"): {DEP},
    ("POST", "/api/v1/tracker/tickets/{ref}/resume"): {DEP, S},
    ("POST", "/api/v1/tracker/tickets/{ref}/extension"): {DEP},
    ("POST", "/api/v1/tracker/tickets/{ref}/extension/decision"): {S},
    ("POST", "/api/v1/tracker/tickets/{ref}/return"): {DEP},
    ("GET", "/api/v1/tracker/return-reasons"): READERS,
    ("POST", "/api/v1/tracker/tickets/{ref}/reply"): {DEP},
    ("POST", "/api/v1/tracker/tickets/{ref}/notes"): {DEP, S},
    ("POST", "/api/v1/tracker/tickets/{ref}/return-visit"): {V, S},
    ("POST", "/api/v1/tracker/tickets/{ref}/supervise"): {S},
    ("GET", "/api/v1/tracker/return-visits"): {V, S},
    ("GET", "/api/v1/tracker/notifications"): {DEP},
    ("POST", "/api/v1/tracker/notifications/read"): {DEP},
    ("PUT", "/api/v1/tracker/units/{code}/contact"): {S},
    ("GET", "/tracker/tickets"): READERS,
    ("GET", "/tracker/inbox"): {DEP, S},
    ("GET", "/tracker/badge"): {DEP, S},
    ("POST", "/tracker/notifications/read"): {DEP, S},
    ("GET", "/tracker/tickets/{ref}"): READERS,
    ("POST", "/tracker/tickets/{ref}/do/{action}"): READERS,  # each action then checks the role itself
    ("GET", "/tracker/visits"): {V, S}, ("GET", "/tracker/visits/{ref}"): {V, S},
    ("GET", "/tracker/supervision"): {S},
    ("GET", "/tracker/calendar"): {S},
    ("GET", "/tracker/rate/{token}"): PUBLIC, ("POST", "/tracker/rate/{token}"): PUBLIC,
    # The unit a supervision order (督办单) is addressed to answers it; the office closes it.
    ("POST", "/tracker/sup/orders/{order_no}/respond"): {DEP, S},
}
OPEN311 = re.compile(r"^/open311/v2/")
# Screens added by the supervision office work: supervisors (and admins) only.
SUPERVISION_ONLY = re.compile(r"^(/api/v1/tracker/(sup|stats|reports|ledger|hotspots|trends|overview|orders)|"
                              r"/tracker/(sup|scorecard|trends|hotspots|overview|reports|ledger|orders|bulletin))")

WORKDIR = Path(tempfile.mkdtemp(prefix="jiesu-authz-"))
SETTINGS = Settings(data_dir=WORKDIR, secret_key="authz", _env_file=None)


def routes():
    for name in SERVICES:
        for router in load_spec(name).routers:
            for route in router.routes:
                for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                    yield method, route.path


API_KEY = "api_key"  # Open311 creates requests for clients holding an operator-role key, sent as `api_key`
POLICY[("POST", "/open311/v2/requests.{fmt}")] = API_KEY


def expected(method: str, path: str):
    if (method, path) in POLICY:
        return POLICY[(method, path)]
    if OPEN311.match(path):
        return PUBLIC
    if (method, path) in POLICY:
        return POLICY[(method, path)]
    if SUPERVISION_ONLY.match(path):
        return {S}
    raise AssertionError(f"{method} {path} is not in the authorization policy: decide who may use it")


@pytest.fixture(scope="module")
def tokens():
    upgrade_all(SETTINGS)
    app = create_app(lambda: Runtime.create(SETTINGS, list(SERVICES), bootstrap="unused:9092"),
                     [r for n in SERVICES for r in load_spec(n).routers], start=False, prepare=True)

    async def make() -> dict:
        async with app.router.lifespan_context(app):
            identity = app.state.runtime.identity
            out = {}
            for role in Role:
                await identity.create_user(f"u-{role.value}", "authz-password", role,
                                           department="M-CGW" if role == Role.DEPARTMENT else None)
                out[role] = await identity.create_token(f"u-{role.value}", "authz")
            return out

    return app, asyncio.run(make())


def test_every_route_is_in_the_policy():
    unknown = []
    for method, path in routes():
        try:
            expected(method, path)
        except AssertionError as exc:
            unknown.append(str(exc))
    assert not unknown, "\n".join(unknown)


def test_every_route_admits_exactly_the_roles_the_policy_names(tokens):
    app, by_role = tokens

    async def run() -> list[str]:
        wrong = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://jiesu.test") as client:
                for method, path in routes():
                    policy = expected(method, path)
                    url = re.sub(r"\{fmt\}", "json", path)
                    url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", url)
                    callers = [(None, None), *((role, by_role[role]) for role in Role)]
                    for role, token in callers:
                        if policy == API_KEY:
                            r = await client.request(method, url, data={"api_key": token or ""})
                            allowed = role in (Role.OPERATOR, Role.ADMIN)
                        else:
                            headers = {"Authorization": f"Bearer {token}"} if token else {}
                            allowed = policy == PUBLIC or role == Role.ADMIN or (role is not None and role in policy)
                            try:
                                r = await asyncio.wait_for(client.request(
                                    method, url, headers=headers, json={} if method in ("POST", "PUT") else None), 10)
                            except TimeoutError:  # a live stream (server-sent events) that opened: admitted
                                if not allowed:
                                    wrong.append(f"{method} {path}: {role} got a stream; the policy refuses it")
                                continue
                        denied = r.status_code in (401, 403) or (r.status_code == 303 and "/login" in
                                                                  r.headers.get("location", ""))
                        if allowed and denied:
                            wrong.append(f"{method} {path}: {role} refused ({r.status_code}) but the policy admits it")
                        if not allowed and not denied:
                            wrong.append(f"{method} {path}: {role} answered {r.status_code}; the policy refuses it")
        return wrong

    wrong = asyncio.run(run())
    assert not wrong, "\n".join(wrong)


async def test_another_units_staff_can_neither_see_nor_touch_a_ticket_by_any_route(live):
    operator = await live.user("op", Role.OPERATOR)
    mine = await live.user("dept-cgw", Role.DEPARTMENT, department="M-CGW")
    other = await live.user("dept-zls", Role.DEPARTMENT, department="U-ZLS")
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {operator}"}, json={
            "kind": "complaint", "subject": "夜间施工噪音", "description": "晚上十一点后工地还在打桩，噪音很大。",
            "citizen": {"name": "张伟", "phone": "13800138000"}})
        number = r.json()["number"]
        for _ in range(200):
            t = await client.get(f"/api/v1/tracker/tickets/{number}", headers={"Authorization": f"Bearer {mine}"})
            if t.status_code == 200 and t.json()["state"] == "assigned":
                break
            await asyncio.sleep(0.05)
        before = t.json()
        assert before["lead"]["code"] == "M-CGW"

        theirs = {"Authorization": f"Bearer {other}"}
        leaks = []
        for method, path in routes():
            if "{ref}" not in path or not path.startswith(("/api/v1/tracker", "/tracker")):
                continue
            answers = []
            for ref in (number, "12345-20991231-999999"):  # theirs to guess, and one that does not exist
                url = path.replace("{ref}", ref).replace("{action}", "sign_for")
                r = await client.request(method, url, headers=theirs, json={} if method == "POST" else None)
                answers.append((r.status_code, r.text.replace(ref, "<ref>")))
            if answers[0][0] not in (403, 404, 422) or answers[0] != answers[1]:
                leaks.append(f"{method} {path} → {answers[0][0]} (unknown ticket: {answers[1][0]})")
        listing = await client.get("/api/v1/tracker/tickets", headers=theirs)
        page = await client.get("/tracker/inbox", headers=theirs)
        after = await client.get(f"/api/v1/tracker/tickets/{number}", headers={"Authorization": f"Bearer {mine}"})
    assert leaks == []
    assert listing.json()["total"] == 0 and number not in page.text
    assert after.json()["state"] == before["state"] and len(after.json()["timeline"]) == len(before["timeline"])


async def test_every_view_of_a_citizens_contact_is_in_the_audit_trail(live):
    from sqlalchemy import select

    from jiesu.audit import seal, verify
    from services.tracker.store import messaging

    operator = await live.user("op", Role.OPERATOR)
    visitor = await live.user("vis", Role.VISITOR)
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.post("/api/v1/intake/tickets", headers={"Authorization": f"Bearer {operator}"}, json={
            "kind": "help", "subject": "停水", "description": "小区停水两天了。", "citizen": {"name": "王芳",
                                                                                         "phone": "13700001111"}})
        number = r.json()["number"]
        for _ in range(200):
            t = await client.get(f"/api/v1/tracker/tickets/{number}", headers={"Authorization": f"Bearer {visitor}"})
            if t.status_code == 200:
                break
            await asyncio.sleep(0.05)
        await client.get("/api/v1/tracker/tickets?phone=13700001111", headers={"Authorization": f"Bearer {operator}"})
    store = live.runtime.store("tracker")
    async with store.db.session() as s:
        rows = (await s.execute(select(messaging.audit.c.actor, messaging.audit.c.action, messaging.audit.c.details)
                                .where(messaging.audit.c.action.in_(("view_contact", "search_by_phone"))))).all()
    assert ("vis", "view_contact") in {(r.actor, r.action) for r in rows}
    search = next(r for r in rows if r.action == "search_by_phone")
    assert search.actor == "op" and "13700001111" not in str(search.details)  # the trail itself masks the number
    from datetime import timedelta

    await seal(store.db, messaging.audit, settle=timedelta(0))
    assert (await verify(store.db, messaging.audit)).ok
