"""The router's HTTP API and pages: suggestions, the dispatch queue, rule tests, return rates, the directory."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, func, select

from jiesu.db import one_of
from jiesu.errors import ApiError
from jiesu.identity import User
from jiesu.privacy import mask_phones
from jiesu.web import Message, RuntimeDep, page, redirect_with, require, templates
from schemas.enums import RETURN_REASONS, ROUTING_METHOD_LABELS, Channel, Kind, Role
from schemas.events import utcnow
from services.router import service
from services.router.domain import rules as rule_engine
from services.router.domain.decide import decide
from services.router.domain.directory import Directory, DirectoryError
from services.router.domain.return_reason import NAMED, named_by_return
from services.router.domain.rules import TicketFacts
from services.router.store import assignments, decisions, directory_versions

api = APIRouter(prefix="/api/v1/router", tags=["router"])
pages = APIRouter(prefix="/router", include_in_schema=False)

Staff = Annotated[User, Depends(require(Role.OPERATOR, Role.DISPATCHER, Role.SUPERVISOR))]
Dispatcher = Annotated[User, Depends(require(Role.DISPATCHER))]
Watcher = Annotated[User, Depends(require(Role.DISPATCHER, Role.SUPERVISOR))]
Admin = Annotated[User, Depends(require(Role.ADMIN))]


def percent(score: float) -> str:
    """A suggestion's probability as a whole percentage. Below the first few suggestions the model's scores are
    often a fraction of a percent; "0%" would read as "impossible", so a score that rounds to 0 shows as "<1%"."""
    shown = round(score * 100)
    return "<1%" if shown == 0 and score > 0 else f"{shown}%"


templates.env.filters["percent"] = percent  # e.g. {{ s.score|percent }} beside a suggestion
# A unit the return reason named (退单理由指明“市环保局”) has no score worth reading: the card says who named it.
templates.env.tests["named_by_return"] = named_by_return  # {% if s.reason is named_by_return %}


class TicketText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=100_000)
    category: str | None = Field(default=None, max_length=64)
    district: str | None = Field(default=None, max_length=32)
    street: str | None = Field(default=None, max_length=32)
    channel: Channel = Channel.HOTLINE
    kind: Kind = Kind.COMPLAINT

    def facts(self) -> TicketFacts:
        return TicketFacts(subject=self.subject, description=self.description, category=self.category or None,
                           district=self.district or None, street=self.street or None, channel=self.channel.value,
                           kind=self.kind.value)


def _decision_json(d) -> dict:
    return {
        "outcome": d.outcome,
        "lead": {"code": d.lead.code, "name": d.lead.name} if d.lead else None,
        "co_handlers": [{"code": u.code, "name": u.name} for u in d.co_handlers],
        "category": d.category,
        "reason": d.reason.model_dump(mode="json"),
        "suggestions": [s.model_dump(mode="json") for s in d.suggestions],
        "why": d.why,
    }


def _explain(state, text: TicketText) -> dict:
    facts = text.facts()
    d = decide(state.directory, facts, classifier=state.classifier, threshold=state.threshold)
    traces = rule_engine.explain(state.directory.rules, facts)
    return {
        "decision": _decision_json(d),
        "rules": [{"rule_id": t.rule_id, "description": t.description, "matched": t.matched, "fired": t.fired,
                   "checks": [{"condition": c.condition, "passed": c.passed, "detail": c.detail} for c in t.checks]}
                  for t in traces],
    }


@api.post("/suggest")
async def suggest(body: TicketText, rt: RuntimeDep, user: Staff) -> dict:
    """Where the router would send this ticket now, and why. Changes nothing."""
    d = decide(rt.state["router"].directory, body.facts(), classifier=rt.state["router"].classifier,
               threshold=rt.state["router"].threshold)
    return _decision_json(d)


@api.post("/explain")
async def explain(body: TicketText, rt: RuntimeDep, user: Watcher) -> dict:
    """The decision and, for every rule in order, which conditions passed or failed."""
    return _explain(rt.state["router"], body)


@api.get("/directory")
async def directory(rt: RuntimeDep, user: Annotated[User, Depends(require())]) -> dict:
    """Districts and streets (for pickers), the taxonomy, and the version of the directory in use."""
    d = rt.state["router"].directory
    return {
        "version": d.version,
        "city": d.city,
        "districts": [{"code": x.code, "name": x.name,
                       "streets": [{"code": s.code, "name": s.name} for s in d.streets_of(x.code)]}
                      for x in d.districts],
        "categories": [{"code": c.code, "name": c.name, "parent": c.parent} for c in d.categories],
    }


@api.get("/units")
async def units(rt: RuntimeDep, user: Annotated[User, Depends(require())],
                q: Annotated[str, Query(max_length=50)] = "") -> list[dict]:
    """Search units by code, name or alias (the dispatcher's search box)."""
    d = rt.state["router"].directory
    found = d.search_units(q) if q else [*d.units, *d.districts][:50]
    return [{"code": u.code, "name": u.name, "type": u.type} for u in found]


class DispatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str = Field(max_length=32, description="lead unit code (主办)")
    co_handlers: list[str] = Field(default_factory=list, max_length=10, description="co-handler codes (协办)")
    category: str | None = Field(default=None, max_length=64)


@api.get("/queue")
async def queue(rt: RuntimeDep, user: Watcher, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict:
    """Tickets waiting for a dispatcher, oldest first, with the router's suggestions.

    Each suggestion is as the router published it (unit, category, score, reason), plus `named_by_return`: true
    for a unit the return reason named (退单理由指明), whose `score` of 1.0 only fills the field and is no
    probability; false for the model's and the rules' suggestions, whose score is one. Show a named unit as
    the dispatch card does, by who named it, not as 100 %."""
    rows, total = await _queue(rt, limit)
    return {"total": total, "items": [_flag_named(_queue_item(r, returned)) for r, returned in rows]}


def _flag_named(item: dict) -> dict:
    """A queue item as the API gives it: each suggestion says whether a return reason named its unit. The event's
    Suggestion has no such field; the card reads its reason instead (the named_by_return test)."""
    return {**item, "suggestions": [{**s, "named_by_return": named_by_return(s["reason"])}
                                    for s in item["suggestions"]]}


@api.post("/tickets/{ticket_id}/dispatch")
async def dispatch_ticket(ticket_id: uuid.UUID, body: DispatchBody, rt: RuntimeDep, user: Dispatcher) -> dict:
    """A dispatcher's decision: assign the ticket to a unit (published at once, kept as training data)."""
    try:
        d, _ = await service.dispatch(rt.store("router"), rt.state["router"], ticket_id, unit_code=body.unit,
                                   co_handlers=body.co_handlers, category=body.category, by=user.username)
    except service.DispatchError as exc:
        raise ApiError(exc.status, exc.code, exc.zh, exc.en) from None
    return _decision_json(d)


@api.get("/stats")
async def stats(rt: RuntimeDep, user: Watcher) -> dict:
    """Assignments and returns (退单) per unit and per rule: where the rules and the directory fail."""
    return await _stats(rt)


@api.get("/directory/export", response_class=PlainTextResponse)
async def export_directory(rt: RuntimeDep, user: Admin) -> str:
    async with rt.store("router").db.session() as s:
        return await s.scalar(select(directory_versions.c.content).order_by(directory_versions.c.id.desc()).limit(1))


# --- pages ------------------------------------------------------------------------------------


async def _queue(rt, limit: int):
    """The oldest `limit` tickets waiting for a dispatcher, how many wait in all, and each one's returns (退单)."""
    async with rt.store("router").db.session() as s:
        total = await s.scalar(select(func.count()).select_from(decisions).where(decisions.c.status == "dispatch"))
        rows = (await s.execute(select(decisions).where(decisions.c.status == "dispatch")
                                .order_by(decisions.c.received_at).limit(limit))).all()
        returned = (await s.execute(
            select(assignments.c.ticket_id, assignments.c.unit_code, assignments.c.return_reason_code,
                   assignments.c.return_reason)
            .where(one_of(assignments.c.ticket_id, [r.ticket_id for r in rows], s.bind.dialect.name),
                   assignments.c.returned_at.is_not(None))
            .order_by(assignments.c.returned_at))).all() if rows else []
    returns: dict[uuid.UUID, list[dict]] = {}
    for r in returned:
        returns.setdefault(r.ticket_id, []).append({
            "unit": r.unit_code, "reason_code": r.return_reason_code,
            "label": RETURN_REASONS.get(r.return_reason_code or "", r.return_reason_code or ""),
            "reason": mask_phones(r.return_reason or "")})
    return [(r, returns.get(r.ticket_id, [])) for r in rows], total


QUEUE_WAIT_WARNING = dt.timedelta(hours=4)  # half a working day in the queue: the card says so in red


def waited(since: dt.datetime, now: dt.datetime) -> str:
    """How long a ticket has waited for a dispatcher, in the largest whole unit: 12 分钟, 3 小时, 2 天."""
    minutes = max(int((now - since).total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} 分钟"
    return f"{minutes // 60} 小时" if minutes < 24 * 60 else f"{minutes // (24 * 60)} 天"


def _queue_item(r, returned: Sequence[dict] = (), now: dt.datetime | None = None) -> dict:
    """A queued ticket as dispatchers see it: they place tickets and never need a citizen's number, so numbers
    typed into the text are masked (the router holds no other contact detail). `waited`: since it came into the
    queue (its last decision: routed, or returned by a unit). `returned`: which units sent it back and why, oldest
    first."""
    now = now or utcnow()
    return {"ticket_id": str(r.ticket_id), "number": r.number, "received_at": r.received_at.isoformat(),
            "waited": waited(r.decided_at, now), "waiting_long": now - r.decided_at >= QUEUE_WAIT_WARNING,
            "subject": mask_phones(r.subject), "description": mask_phones(r.description),
            "kind": r.kind, "urgency": r.urgency,
            "district": r.district, "street": r.street, "why": mask_phones(r.why), "returns": r.returns,
            "excluded": r.excluded, "returned": list(returned), "suggestions": r.suggestions}


_UNIT_BOX_MAX = 50  # the unit box's maxlength: no unit's name, alias or code is longer
_CANDIDATES_SHOWN = 5  # an ambiguous unit box lists this many of the units it fits




@pages.get("/dispatch", response_class=HTMLResponse)
async def dispatch_queue(request: Request, rt: RuntimeDep, user: Watcher, done: Message = "", refused: Message = "",
                         refused_en: Message = "", failed: Annotated[str, Query(max_length=36)] = "",
                         typed: Annotated[str, Query(max_length=_UNIT_BOX_MAX)] = "",
                         selected: Annotated[str, Query(max_length=36)] = "") -> HTMLResponse:
    """Tickets the router could not place with confidence, oldest first. After the form (dispatch_form): what was
    dispatched (`done`), or why not (`refused`), beside the card of the ticket that `failed` (or above the queue
    when the ticket has left it), with what was `typed` still in its unit box. The card selected is the one that
    failed, else the `selected` one (the card after the one just dispatched), else the first. Supervisors see
    the cards without the forms: only dispatchers dispatch."""
    rows, total = await _queue(rt, 200)
    items = [_queue_item(r, returned) for r, returned in rows]
    present = {i["ticket_id"] for i in items}
    failed_id = failed if refused and failed in present else None
    chosen = failed_id or (selected if selected in present else None) or (items[0]["ticket_id"] if items else None)
    directory = rt.state["router"].directory
    return page(request, "router_dispatch.html", rows=items, total=total, done=done, refused=refused,
                refused_en=refused_en, failed=failed_id, typed=typed, selected=chosen,
                can_dispatch=user.has(Role.DISPATCHER), NAMED=NAMED,
                unit_name=lambda code: directory.unit(code).name if directory.has_unit(code) else code)


@pages.post("/dispatch/{ticket_id}", response_class=HTMLResponse)
async def dispatch_form(ticket_id: uuid.UUID, request: Request, rt: RuntimeDep, user: Watcher,
                        unit: Annotated[str, Form()] = "", search_unit: Annotated[str, Form()] = "",
                        following: Annotated[str, Form(max_length=36)] = "") -> Response:
    """The queue page's form: a suggestion's button sends its unit code, the unit box what the dispatcher typed
    (a code, a name, an alias or part of one). Either way back to the queue (303, so that reloading it or keeping
    it as a bookmark works): saying where the ticket went, with the card that `following` names selected (the
    dispatcher goes on from there, not from the top), or why it was not sent, beside its card."""
    # A suggestion's button sends its unit and the box as well: the button pressed wins. Enter in the box presses
    # the form's hidden first button (router_dispatch.html), and 派出 too sends no unit: then the box is meant.
    typed = search_unit.strip()[:_UNIT_BOX_MAX]
    if not user.has(Role.DISPATCHER):  # supervisors see the queue but do not dispatch: refused as any route refuses
        raise ApiError(403, "forbidden", "只有派单员可以派单", "Only dispatchers may dispatch")
    try:
        code = _unit_meant(rt.state["router"].directory, unit.strip() or typed)
        d, number = await service.dispatch(rt.store("router"), rt.state["router"], ticket_id, unit_code=code,
                                           co_handlers=[], category=None, by=user.username)
    except (service.DispatchError, ApiError) as exc:
        return redirect_with("/router/dispatch", refused=exc.zh, refused_en=exc.en, failed=str(ticket_id), typed=typed)
    return redirect_with("/router/dispatch", done=f"工单 {number} 已派至 {d.lead.name}",
                         **({"selected": following} if following else {}))


def _unit_meant(directory: Directory, typed: str) -> str:
    """The code of the unit a dispatcher chose or typed (see Directory.resolve_unit), or the reason there is none."""
    if not typed:
        raise ApiError(422, "unit_required", "请采纳一条建议，或输入承办单位的名称或代码",
                       "Take a suggestion, or type a unit's name or code")
    found = directory.resolve_unit(typed)
    if len(found) == 1:
        return found[0].code
    if not found:
        raise ApiError(422, "unknown_unit", f"没有名称或代码为“{typed}”的承办单位，请核对，或从下拉列表中选择",
                       f"No unit is named or coded “{typed}”; check it, or pick one from the list")
    shown = found[:_CANDIDATES_SHOWN]
    more_zh = f"等 {len(found)} 个单位" if len(found) > len(shown) else ""
    more_en = f" and {len(found) - len(shown)} more" if len(found) > len(shown) else ""
    raise ApiError(422, "ambiguous_unit",
                   f"“{typed}”对应多个承办单位：{'、'.join(_unit_label(directory, u) for u in shown)}{more_zh}，"
                   "请输入完整名称或代码",
                   f"“{typed}” fits several units: {', '.join(u.code for u in shown)}{more_en}; "
                   "type the full name or the code")


def _unit_label(directory: Directory, unit) -> str:
    """市公安局（M-GAJ）; a street office with its district, as street names repeat across districts."""
    name = f"{directory.unit(unit.parent).name}{unit.name}" if unit.type == "street" else unit.name
    return f"{name}（{unit.code}）"


@pages.get("/rules", response_class=HTMLResponse)
async def rules_page(request: Request, rt: RuntimeDep, user: Watcher) -> HTMLResponse:
    return page(request, "router_rules.html", directory=rt.state["router"].directory,
                version_id=rt.state["router"].directory_version_id, result=None, form={})


@pages.post("/rules", response_class=HTMLResponse)
async def rules_try(request: Request, rt: RuntimeDep, user: Watcher,
                    subject: Annotated[str, Form(max_length=200)] = "",
                    description: Annotated[str, Form(max_length=100_000)] = "",
                    district: Annotated[str, Form(max_length=32)] = "",
                    street: Annotated[str, Form(max_length=32)] = "",
                    channel: Annotated[Channel, Form()] = Channel.HOTLINE,
                    kind: Annotated[Kind, Form()] = Kind.COMPLAINT,
                    category: Annotated[str, Form(max_length=64)] = "") -> HTMLResponse:
    text = TicketText(subject=subject, description=description, district=district or None, street=street or None,
                      channel=channel, kind=kind, category=category or None)
    template = "router_rules_result.html" if request.headers.get("hx-request") else "router_rules.html"
    return page(request, template, directory=rt.state["router"].directory,
                version_id=rt.state["router"].directory_version_id, result=_explain(rt.state["router"], text),
                form=text.model_dump(mode="json"))


async def _stats(rt) -> dict:
    returned = func.sum(case((assignments.c.returned_at.is_not(None), 1), else_=0))
    async with rt.store("router").db.session() as s:
        by_unit = (await s.execute(select(assignments.c.unit_code, func.count(), returned)
                                   .group_by(assignments.c.unit_code))).all()
        by_rule = (await s.execute(select(assignments.c.rule_id, func.count(), returned)
                                   .where(assignments.c.rule_id.is_not(None)).group_by(assignments.c.rule_id))).all()
        by_method = (await s.execute(select(assignments.c.method, func.count(), returned)
                                     .group_by(assignments.c.method))).all()
    directory = rt.state["router"].directory

    def rows(items, label):
        out = [{"key": k, "label": label(k), "assigned": n, "returned": int(r or 0),
                "return_rate": round((r or 0) / n, 4) if n else 0.0} for k, n, r in items]
        return sorted(out, key=lambda x: (-x["return_rate"], -x["assigned"]))

    rule_desc = {r.id: r.description for r in directory.rules}
    return {
        "units": rows(by_unit, lambda c: directory.unit(c).name if directory.has_unit(c) else c),
        "rules": rows(by_rule, lambda r: rule_desc.get(r, "（已删除的规则）")),
        "methods": rows(by_method, lambda m: ROUTING_METHOD_LABELS.get(m, m)),
    }


@pages.get("/stats", response_class=HTMLResponse)
async def stats_page(request: Request, rt: RuntimeDep, user: Watcher) -> HTMLResponse:
    return page(request, "router_stats.html", stats=await _stats(rt))


@pages.get("/directory", response_class=HTMLResponse)
async def directory_page(request: Request, rt: RuntimeDep, user: Admin) -> HTMLResponse:
    return await _directory_page(request, rt)


async def _directory_page(request, rt, *, error: str | None = None, draft: str | None = None,
                          message: str | None = None, confirm_removal: bool = False) -> HTMLResponse:
    async with rt.store("router").db.session() as s:
        history = (await s.execute(select(directory_versions.c.id, directory_versions.c.version,
                                          directory_versions.c.summary, directory_versions.c.imported_by,
                                          directory_versions.c.imported_at)
                                   .order_by(directory_versions.c.id.desc()).limit(50))).all()
        content = await s.scalar(select(directory_versions.c.content).order_by(directory_versions.c.id.desc())
                                 .limit(1))
    state = rt.state["router"]
    return page(request, "router_directory.html", directory=state.directory, version_id=state.directory_version_id,
                history=history, content=draft if draft is not None else content, error=error, message=message,
                confirm_removal=confirm_removal)


@pages.post("/directory", response_class=HTMLResponse)
async def directory_import(request: Request, rt: RuntimeDep, user: Admin,
                           content: Annotated[str, Form(max_length=2_000_000)],
                           remove_units_with_open_work: Annotated[bool, Form()] = False) -> HTMLResponse:
    try:
        version_id, directory, summary = await service.import_directory(
            rt.store("router"), content, by=user.username, remove_units_with_open_work=remove_units_with_open_work)
    except service.DirectoryUnchanged as same:
        note = "；注释或格式的修改不单独保存" if same.text_differs else ""
        return await _directory_page(request, rt, draft=content if same.text_differs else None, message=(
            f"{same.zh}{note}"))
    except service.UnitsStillHandling as exc:  # the admin may confirm and send it again
        return await _directory_page(request, rt, error=str(exc), draft=content, confirm_removal=True)
    except (DirectoryError, ValueError) as exc:  # YAML or cross-reference errors: nothing changes
        return await _directory_page(request, rt, error=str(exc), draft=content)
    state = rt.state["router"]  # in force here at once; intake is owed it with the version (import_directory)
    state.directory_version_id, state.directory = version_id, directory
    return await _directory_page(request, rt, message=f"已启用版本 {service.version_label(directory, version_id)}：{summary}")
