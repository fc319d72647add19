"""The HTTP shell every service shares: app factory, log-in, auth dependencies, health.

A service contributes `APIRouter`s; `create_app` mounts those of the services this
process runs, plus log-in, `/healthz`, `/readyz`, `/metrics` and static assets.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from zoneinfo import ZoneInfo
from collections.abc import Callable
from dataclasses import dataclass
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jiesu import audit
from jiesu.errors import ApiError, reads_json
from jiesu.errors import install as install_errors
from jiesu.identity import LoginThrottled, User
from jiesu.runtime import Runtime
from schemas import enums
from schemas.enums import Role

SESSION_COOKIE = "jiesu_session"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=[str(HERE / "templates")])
templates.env.globals.update(
    KIND_LABELS=enums.KIND_LABELS, CHANNEL_LABELS=enums.CHANNEL_LABELS, URGENCY_LABELS=enums.URGENCY_LABELS,
    STATE_LABELS=enums.STATE_LABELS, ROLE_LABELS=enums.ROLE_LABELS,
)


_display_tz: list[ZoneInfo] = [ZoneInfo("Asia/Shanghai")]


LONG_DATE = "%Y年%m月%d日 %H:%M"  # for letters and mail, where a date is written out


def localtime(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M", tz: ZoneInfo | None = None) -> str:
    """A stored UTC instant as people here read it: local time (the system's zone), to the minute."""
    if not value:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz or _display_tz[0]).strftime(fmt)


templates.env.filters["localtime"] = localtime
# For pages whose scripts show times: the zone `localtime` uses, not the browser's.
templates.env.globals["display_timezone"] = lambda: _display_tz[0].key


def add_template_dir(path: Path) -> None:
    """Each service keeps its own templates; one loader searches them all."""
    loader = templates.env.loader
    if str(path) not in loader.searchpath:
        loader.searchpath.append(str(path))


async def runtime(request: Request) -> Runtime:
    """A dependency. Async: FastAPI would run a plain function in its thread pool, on every request."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def _serializer(rt: Runtime) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(rt.secret, salt="jiesu-session")


def session_cookie(rt: Runtime, user: User) -> str:
    return _serializer(rt).dumps({"id": user.id, "u": user.username, "n": user.display_name, "r": user.role.value,
                                  "d": user.department, "c": secrets.token_urlsafe(16)})


def _session(request: Request) -> dict | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    rt = request.app.state.runtime
    try:
        return _serializer(rt).loads(raw, max_age=int(rt.settings.session_hours * 3600))
    except BadSignature:
        return None


async def optional_user(request: Request) -> User | None:
    """The caller: a bearer token (machine clients) or a session cookie (people)."""
    if hasattr(request.state, "user"):
        return request.state.user
    user: User | None = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = await request.app.state.runtime.identity.user_for_token(auth[7:].strip())
        if user is None:
            raise ApiError(401, "invalid_token", "访问令牌无效或已吊销", "The API token is invalid or revoked",
                           headers={"WWW-Authenticate": "Bearer"})
        request.state.via_token = True
    else:
        user = _session_user(request)
        if user is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
            await _check_csrf(request)
    request.state.user = user
    return user


def _session_user(request: Request) -> User | None:
    """The person the session cookie names, and their form token in `request.state.csrf`; no CSRF check."""
    data = _session(request)
    if not data:
        return None
    request.state.csrf = data.get("c", "")
    return User(data["id"], data["u"], data["n"], Role(data["r"]), data.get("d"))


async def _check_csrf(request: Request) -> None:
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get("csrf_token")
    if not sent or not secrets.compare_digest(str(sent), request.state.csrf):
        raise ApiError(403, "csrf_failed", "页面已过期，请刷新后重试", "The form has expired; reload the page and retry")


def require(*roles: Role) -> Callable:
    """A dependency: the caller must be logged in with one of these roles (admin always may)."""

    async def dependency(request: Request) -> User:
        user = await optional_user(request)  # a call, not a sub-dependency: each dependency costs on every request
        if user is None:
            raise _not_logged_in(request)
        audit.current_actor.set(user.username)
        audit.current_address.set(request.client.host if request.client else "")
        if roles and not user.has(*roles):
            raise ApiError(403, "forbidden", "您的角色无权执行此操作", "Your role may not do this")
        return user

    return dependency


def _not_logged_in(request: Request) -> Exception:
    """The refusal of a caller not logged in, told apart as errors.reads_json tells them: scripts read 401 JSON;
    htmx, whose page stayed open while the session ended, has the browser go to log in from that page; anyone
    else (a person's browser, or a client that does not say, as curl) is sent to log in and then back here."""
    if "hx-request" in request.headers and "authorization" not in request.headers:
        # htmx would follow a redirect itself and swap the log-in form into the badge; HX-Redirect moves the page.
        came_from = _our_page(request, request.headers.get("hx-current-url", "")) or "/"
        return ApiError(401, "login_required", "登录已过期，请重新登录", "Your session has ended; log in again",
                        headers={"HX-Redirect": login_url(came_from)})
    if reads_json(request):
        return ApiError(401, "login_required", "请先登录", "Log in first", headers={"WWW-Authenticate": "Bearer"})
    return _LoginRedirect(_path_and_query(request.url))


class _LoginRedirect(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def login_url(next_path: str) -> str:
    """The log-in page, which leads back to `next_path` (a path of this site) once the user has logged in."""
    return f"/login?next={quote(_safe_next(next_path))}"


def page(request: Request, template: str, **context) -> HTMLResponse:
    user = getattr(request.state, "user", None)
    return templates.TemplateResponse(
        request, template, {"user": user, "csrf": getattr(request.state, "csrf", ""), **context}
    )


MESSAGE_CHARS = 200  # of a message a page is sent back with after a form (done=…, refused=…)
Message = Annotated[str, Query(max_length=MESSAGE_CHARS)]  # such a message, as a page's query parameter


def with_message(path: str, **messages: str) -> str:
    """`path` with these messages for the page to show (done=…, refused=…), each cut to MESSAGE_CHARS, as long
    as the pages' query parameters allow."""
    return path + ("&" if "?" in path else "?") + "&".join(f"{k}={quote(v[:MESSAGE_CHARS])}"
                                                           for k, v in messages.items())


def redirect_with(path: str, *, fragment: str = "", **messages: str) -> RedirectResponse:
    """After a form's post, to `path` with these messages (`with_message`), and at `fragment` of the page if
    given: 303, so the browser gets the page."""
    return RedirectResponse(with_message(path, **messages) + (f"#{fragment}" if fragment else ""), status_code=303)


def error_page(request: Request, error: ApiError) -> HTMLResponse:
    """A refusal as a page, for a person's browser (errors.wants_page): what went wrong and what to do, with the
    way back to the page the form came from when the browser names one of ours."""
    # A stale form fails its CSRF check before the user is set: the session still says who is logged in.
    user = getattr(request.state, "user", None) or _session_user(request)
    here = _path_and_query(request.url)
    response = page(request, "error.html", user=user, error=error, back=_referring_page(request),
                    here=here if request.method == "GET" else None)
    response.status_code = error.status
    response.headers.update(error.headers or {})
    return response


def _referring_page(request: Request) -> str | None:
    """The path of the page this request came from, if the Referer is this site's (never another site's)."""
    path = _our_page(request, request.headers.get("referer", ""))
    return None if path == "/" else path


def _our_page(request: Request, url: str) -> str | None:
    """The path and query of `url` if it is a page of this site (the host the request was sent to), else None."""
    parts = urlsplit(url)
    if not parts.path or parts.netloc != request.url.netloc:
        return None
    return _safe_next(_path_and_query(parts))


def _path_and_query(url) -> str:
    """A URL's path with its query, if any (a starlette URL or a urlsplit result)."""
    return url.path + (f"?{url.query}" if url.query else "")


shell = APIRouter()


@shell.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return Response(status_code=204)


@shell.get("/healthz", include_in_schema=False)
async def healthz() -> dict:
    return {"status": "ok"}


@shell.get("/readyz", include_in_schema=False)
async def readyz(rt: RuntimeDep) -> JSONResponse:
    status = await rt.ready()
    ok = all(v == "ok" for v in status.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": status}, status_code=200 if ok else 503)


@shell.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@shell.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, "login.html", next=_safe_next(next), error=None)


@shell.post("/login", include_in_schema=False)
async def login(request: Request, rt: RuntimeDep, username: Annotated[str, Form()],
                password: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> Response:
    username = username.strip()
    address = request.client.host if request.client else "unknown"
    try:
        await rt.identity.check_throttle(username, address)
    except LoginThrottled as exc:
        minutes = max(1, round(exc.retry_after / 60))
        response = page(request, "login.html", next=_safe_next(next),
                        error=f"登录失败次数过多，请 {minutes} 分钟后再试 / Too many failed log-ins; try again in "
                              f"{minutes} min")
        response.status_code = 429
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    user = await rt.identity.authenticate(username, password)
    if user is None:
        await rt.identity.record_failure(username, address)
        response = page(request, "login.html", next=_safe_next(next),
                        error="用户名或密码错误 / Wrong user name or password")
        response.status_code = 401
        return response
    await rt.identity.clear_failures(username)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session_cookie(rt, user), httponly=True, samesite="lax",
                        max_age=int(rt.settings.session_hours * 3600), secure=request.url.scheme == "https")
    return response


@shell.post("/logout", include_in_schema=False)
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@shell.get("/api/v1/me", tags=["identity"])
async def me(user: Annotated[User, Depends(require())]) -> dict:
    return {"username": user.username, "display_name": user.display_name, "role": user.role.value,
            "department": user.department}


def _safe_next(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") else "/"


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    roles: frozenset[Role]  # admin sees everything
    order: int = 100
    accesskey: str = ""


NAV: list[NavItem] = []
HOME_BY_ROLE: dict[Role, str] = {}


def register_nav(label: str, href: str, roles: tuple[Role, ...], *, order: int = 100, accesskey: str = "",
                 home_for: tuple[Role, ...] = ()) -> None:
    """A service adds its screens to the menu (and may be the landing page of some roles)."""
    if any(item.href == href for item in NAV):
        return
    NAV.append(NavItem(label, href, frozenset(roles), order, accesskey))
    NAV.sort(key=lambda item: item.order)
    for role in home_for:
        HOME_BY_ROLE.setdefault(role, href)


def nav_for(user: User | None) -> list[NavItem]:
    if user is None:
        return []
    return [item for item in NAV if user.role == Role.ADMIN or user.role in item.roles]


templates.env.globals["nav_for"] = nav_for


SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'"),
)


class SecurityHeaders:
    """Adds the security headers a response does not set itself.

    Plain ASGI rather than `@app.middleware("http")`: that wrapper costs a task group per
    request (a sixth of intake's time under load) and buffers live streams.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(rt_factory: Callable[[], Runtime], routers: list[APIRouter], *, start: bool = True,
               prepare: bool = False, title: str = "jiesu 接诉即办",
               static_dirs: list[tuple[str, Path]] | None = None, opentelemetry: bool = False) -> FastAPI:
    """Build the ASGI app; the lifespan creates and starts the runtime.

    With `start=False` nothing is started; with `prepare=True` as well, the services set up
    their state (directory, model, calendar) but no broker or background job runs: enough to
    exercise every HTTP endpoint in tests.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt = rt_factory()
        app.state.runtime = rt
        _display_tz[0] = ZoneInfo(rt.settings.timezone)
        if start:
            await rt.start()
        elif prepare:
            await rt.prepare()
        try:
            yield
        finally:
            if start:
                await rt.stop()
            elif prepare:
                await rt.close()

    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan,
                  description="Intake, routing and tracking of citizens' requests (12345 热线, 市长信箱, 网上留言).",
                  telemetry={"tracing": opentelemetry, "metrics": opentelemetry, "logs": opentelemetry})
    install_errors(app, error_page)

    @app.exception_handler(_LoginRedirect)
    async def _to_login(request: Request, exc: _LoginRedirect) -> Response:
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    app.add_middleware(SecurityHeaders)

    app.include_router(shell)

    @app.get("/", include_in_schema=False)
    async def home(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> Response:
        if user is None:
            return RedirectResponse("/login", status_code=303)
        items = nav_for(user)
        home = HOME_BY_ROLE.get(user.role) or (items[0].href if items else "/api/v1/me")
        return RedirectResponse(home, status_code=303)

    for router in routers:
        app.include_router(router)
    for name, path in static_dirs or {}:
        app.mount(f"/static/{name}", StaticFiles(directory=str(path)), name=f"static-{name}")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    return app
