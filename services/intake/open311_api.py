"""Open311 GeoReport v2 at /open311/v2/: existing civic-reporting clients submit and look up requests.

Services are the router directory's category taxonomy, as the router last published it
(DirectoryPublished; before its first, the directory file it starts from). A service request is a
ticket; `service_request_id` is its number. POST needs `api_key`: one of our API tokens,
of an operator-role machine account. GET lists only what may be public: requests that
came in through Open311 or whose writer agreed to publish, never confidential ones,
never names or contact details. Errors are the specification's list of {code, description}.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import or_, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from jiesu.errors import ApiError, validation_fields
from schemas.enums import STATE_LABELS, Channel, Kind, Role
from services.intake import service
from services.intake.domain import open311
from services.intake.domain.places import Places
from services.intake.domain.submission import MAX_SUBJECT, TicketSubmission
from services.intake.limits import FORM_LIMIT, LimitedRoute, limited
from services.intake.store import tickets

MAX_RESULTS = 1000
DEFAULT_DAYS = 90
MAX_FIELDS = 60


class Open311Route(LimitedRoute):
    """Every error in the specification's format, in the format the client asked for."""

    def render_error(self, request: Request, error: ApiError) -> Response:
        fmt = request.path_params.get("fmt", "json")
        body = open311.errors(error.status, f"{error.en} / {error.zh}")
        if fmt == "xml":
            return Response(open311.to_xml("errors", "error", body), status_code=error.status,
                            media_type="application/xml; charset=utf-8")
        return JSONResponse(body, status_code=error.status)

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def spec_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return self.render_error(request, exc)
            except RequestValidationError as exc:
                fields = validation_fields(exc.errors())
                return self.render_error(request, ApiError(
                    400, "invalid_input", "；".join(f"{f['field']}：{f['zh']}" for f in fields),
                    "; ".join(f"{f['field']}: {f['en']}" for f in fields)))
            except StarletteHTTPException as exc:
                return self.render_error(request, ApiError(exc.status_code, "http", "请求有误", str(exc.detail)))

        return spec_errors


open311_api = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=limited(FORM_LIMIT, Open311Route))


def places(rt) -> Places:
    """The directory's public part in use (kept by bootstrap, replaced when the router publishes another)."""
    return rt.store("intake").local[service.PLACES]


def _format(fmt: str) -> str:
    if fmt not in open311.FORMATS:
        raise ApiError(404, "format", "只支持 json 和 xml", "Format must be json or xml")
    return fmt


def _respond(fmt: str, data, root: str, item: str, status_code: int = 200) -> Response:
    if fmt == "xml":
        return Response(open311.to_xml(root, item, data), status_code=status_code,
                        media_type="application/xml; charset=utf-8")
    return JSONResponse(data, status_code=status_code)


def _service_names(rt) -> dict[str, str]:
    return places(rt).category_names


@open311_api.get("/services.{fmt}")
async def services(fmt: str, request: Request) -> Response:
    """Service list: every category of the taxonomy."""
    fmt = _format(fmt)
    return _respond(fmt, open311.services(places(request.app.state.runtime).categories), "services", "service")


@open311_api.get("/services/{code}.{fmt}")
async def service_definition(code: str, fmt: str, request: Request) -> Response:
    """Service definition: no extra attributes for any of our services."""
    fmt = _format(fmt)
    if code not in _service_names(request.app.state.runtime):
        raise ApiError(404, "unknown_service", f"没有服务代码 {code}", f"No service with code {code}")
    definition = {"service_code": code, "attributes": []}
    if fmt == "xml":
        return Response(open311.definition_to_xml(definition), media_type="application/xml; charset=utf-8")
    return JSONResponse(definition)


def _float(value: str | None, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise ApiError(400, "invalid_input", f"{name} 应为数字", f"{name} must be a number") from None


def _not_encoded(charset: str = "UTF-8") -> ApiError:
    return ApiError(400, "invalid_encoding", f"请求内容不是有效的 {charset} 编码，请以 UTF-8 编码后重新提交",
                    f"The request body is not valid {charset}; encode it as UTF-8 and send it again")


async def _form(request: Request) -> dict[str, str]:
    """The posted fields, read as UTF-8; a body that is not is refused (`invalid_encoding`), never guessed at.

    A urlencoded body is read as UTF-8, raw or percent-encoded: Starlette reads its raw bytes as Latin-1, and
    路灯 would be stored as è·¯ç¯. A multipart body (no files are taken, so it is all text) must decode as
    its declared charset, UTF-8 unless it says otherwise: Starlette would decode a part that does not as
    Latin-1 without a word."""
    media_type, _, params = request.headers.get("content-type", "").partition(";")
    body = await request.body()  # kept: the multipart parser below reads it again
    if media_type.strip().lower() != "application/x-www-form-urlencoded":
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
        charset = next((v.strip().strip('"') for k, _, v in (p.partition("=") for p in params.split(";"))
                        if k.strip().lower() == "charset"), "utf-8")
        try:
            body.decode(charset)
        except (UnicodeDecodeError, LookupError):
            raise _not_encoded(charset) from None
        return {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=MAX_FIELDS, errors="strict"))
    except UnicodeDecodeError:
        raise _not_encoded() from None
    except ValueError:
        raise ApiError(400, "invalid_input", f"字段过多，最多 {MAX_FIELDS} 个",
                       f"Too many fields; at most {MAX_FIELDS}") from None


@open311_api.post("/requests.{fmt}")
async def create_request(fmt: str, request: Request) -> Response:
    """Create a service request (application/x-www-form-urlencoded, as the specification says; multipart too)."""
    fmt = _format(fmt)
    rt = request.app.state.runtime
    form = await _form(request)
    api_key = form.get("api_key", "")
    user = await rt.identity.user_for_token(api_key) if api_key else None
    if user is None or not user.has(Role.OPERATOR):
        raise ApiError(403, "invalid_api_key", "api_key 无效", "api_key is missing or invalid")
    code = form.get("service_code", "")
    names = _service_names(rt)
    if not code:
        raise ApiError(400, "invalid_input", "缺少 service_code", "service_code is required")
    if code not in names:
        raise ApiError(404, "unknown_service", f"没有服务代码 {code}", f"No service with code {code}")
    description = form.get("description", "")
    lat, lon = _float(form.get("lat"), "lat"), _float(form.get("long"), "long")
    address = form.get("address_string", "")
    if lat is None and lon is None and not address and not form.get("address_id"):
        raise ApiError(400, "invalid_input", "需提供位置：lat/long、address_string 或 address_id",
                       "A location is required: lat & long, address_string or address_id")
    first_line = description.strip().splitlines()[0] if description.strip() else ""
    subject = (first_line[:60] or names[code])[:MAX_SUBJECT]
    name = " ".join(x for x in (form.get("last_name", ""), form.get("first_name", "")) if x)
    try:
        sub = TicketSubmission.model_validate({
            "kind": Kind.COMPLAINT, "subject": subject, "description": description, "category": code,
            "citizen": {"name": name, "phone": form.get("phone", ""), "email": form.get("email", "")},
            "location": {"address": address or form.get("address_id", ""), "latitude": lat, "longitude": lon},
            "may_publish": True,  # GeoReport requests are public by the nature of the protocol
        })
    except ValidationError as exc:
        fields = validation_fields(exc.errors())
        raise ApiError(400, "invalid_input", "；".join(f"{f['field']}：{f['zh']}" for f in fields),
                       "; ".join(f"{f['field']}: {f['en']}" for f in fields)) from None
    receipt = await service.accept(rt.store("intake"), sub, channel=Channel.OPEN311, operator=user.username,
                                   idempotency_key=request.headers.get("idempotency-key"),
                                   tz=ZoneInfo(rt.settings.timezone))
    body = [{"service_request_id": receipt.number, "token": str(receipt.ticket_id),
             "service_notice": "已受理，将转有关部门办理 / Accepted; it will be sent to the responsible department",
             "account_id": None}]
    return _respond(fmt, body, "service_requests", "request", status_code=200 if receipt.duplicate_request else 201)


def _public():
    """What GET may show: Open311 requests and letters whose writer agreed to publish; never confidential ones."""
    return (or_(tickets.c.channel == Channel.OPEN311.value, tickets.c.may_publish.is_(True)),
            tickets.c.confidential.is_(False))


def _views(rt, rows) -> list[dict]:
    names = _service_names(rt)
    return [open311.request_view(r._mapping, names.get(r.category), STATE_LABELS.get(r.state, r.state)) for r in rows]


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_input", f"{name} 应为 ISO 8601 日期时间",
                       f"{name} must be a W3C/ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@open311_api.get("/requests.{fmt}")
async def list_requests(fmt: str, request: Request) -> Response:
    """Service requests with the specification's filters; by default the last 90 days, at most 1000."""
    fmt = _format(fmt)
    rt = request.app.state.runtime
    q = request.query_params
    stmt = select(tickets).where(*_public())
    if q.get("service_request_id"):
        stmt = stmt.where(tickets.c.number.in_([x.strip() for x in q["service_request_id"].split(",")][:100]))
    else:
        start, end = _date(q.get("start_date"), "start_date"), _date(q.get("end_date"), "end_date")
        if start is None and end is None:
            start = datetime.now(UTC) - timedelta(days=DEFAULT_DAYS)
        if start:
            stmt = stmt.where(tickets.c.received_at >= start)
        if end:
            stmt = stmt.where(tickets.c.received_at <= end)
        if q.get("service_code"):
            stmt = stmt.where(tickets.c.category.in_([x.strip() for x in q["service_code"].split(",")]))
        if q.get("status"):
            wanted = {x.strip() for x in q["status"].split(",")}
            if not wanted <= {"open", "closed"}:
                raise ApiError(400, "invalid_input", "status 只能是 open 或 closed", "status must be open or closed")
            closed = tickets.c.state.in_(sorted(open311.CLOSED_STATES))
            if wanted == {"open"}:
                stmt = stmt.where(~closed)
            elif wanted == {"closed"}:
                stmt = stmt.where(closed)
    async with rt.store("intake").db.session() as s:
        rows = (await s.execute(stmt.order_by(tickets.c.received_at.desc()).limit(MAX_RESULTS))).all()
    return _respond(fmt, _views(rt, rows), "service_requests", "request")


@open311_api.get("/requests/{number}.{fmt}")
@open311_api.get("/request/{number}.{fmt}", include_in_schema=False)  # the path as the Swagger file spells it
async def get_request(number: str, fmt: str, request: Request) -> Response:
    fmt = _format(fmt)
    rt = request.app.state.runtime
    async with rt.store("intake").db.session() as s:
        rows = (await s.execute(select(tickets).where(tickets.c.number == number, *_public()))).all()
    if not rows:
        raise ApiError(404, "not_found", f"没有可公开的服务请求 {number}", f"No public service request {number}")
    return _respond(fmt, _views(rt, rows), "service_requests", "request")


@open311_api.get("/tokens/{token}.{fmt}")
async def get_token(token: str, fmt: str, request: Request) -> Response:
    """The token returned at creation (the ticket id) → the service request id (the number)."""
    fmt = _format(fmt)
    try:
        ticket_id = uuid.UUID(token)
    except ValueError:
        raise ApiError(404, "not_found", "没有这个令牌", f"No token {token}") from None
    async with request.app.state.runtime.store("intake").db.session() as s:
        row = (await s.execute(select(tickets.c.number).where(tickets.c.ticket_id == ticket_id,
                                                                 tickets.c.channel == Channel.OPEN311.value))).first()
    if row is None:
        raise ApiError(404, "not_found", "没有这个令牌", f"No token {token}")
    return _respond(fmt, [{"service_request_id": row.number, "token": token}], "service_requests", "request")
