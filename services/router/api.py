"""The router's HTTP API: read-only routing suggestions and the directory, for other screens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from jiesu.identity import User
from jiesu.web import RuntimeDep, page, require
from schemas.enums import Channel, Kind, Role
from services.router.domain.decide import decide
from services.router.domain.rules import TicketFacts
from services.router.store import decisions

api = APIRouter(prefix="/api/v1/router", tags=["router"])
pages = APIRouter(prefix="/router", include_in_schema=False)

Staff = Annotated[User, Depends(require(Role.OPERATOR, Role.DISPATCHER, Role.SUPERVISOR))]


class SuggestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=20000)
    category: str | None = Field(default=None, max_length=64)
    district: str | None = Field(default=None, max_length=32)
    street: str | None = Field(default=None, max_length=32)
    channel: Channel = Channel.HOTLINE
    kind: Kind = Kind.COMPLAINT


@api.post("/suggest")
async def suggest(body: SuggestRequest, rt: RuntimeDep, user: Staff) -> dict:
    """Where the router would send this ticket now, and why. Changes nothing."""
    state = rt.state["router"]
    facts = TicketFacts(subject=body.subject, description=body.description, category=body.category,
                        district=body.district, street=body.street, channel=body.channel.value, kind=body.kind.value)
    d = decide(state.directory, facts, classifier=state.classifier, threshold=state.threshold)
    return {
        "outcome": d.outcome,
        "lead": {"code": d.lead.code, "name": d.lead.name} if d.lead else None,
        "co_handlers": [{"code": u.code, "name": u.name} for u in d.co_handlers],
        "category": d.category,
        "reason": d.reason.model_dump(mode="json"),
        "suggestions": [s.model_dump(mode="json") for s in d.suggestions],
        "why": d.why,
    }


@api.get("/directory")
async def directory(rt: RuntimeDep, user: Annotated[User, Depends(require())]) -> dict:
    """Districts and streets (for pickers) and the version of the directory in use."""
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


@pages.get("/dispatch", response_class=HTMLResponse)
async def dispatch_queue(request: Request, rt: RuntimeDep,
                         user: Annotated[User, Depends(require(Role.DISPATCHER, Role.SUPERVISOR))]) -> HTMLResponse:
    """Tickets the router could not place with confidence, oldest first."""
    async with rt.store("router").db.session() as s:
        rows = (await s.execute(select(decisions).where(decisions.c.status == "dispatch")
                                .order_by(decisions.c.received_at).limit(200))).all()
    return page(request, "router_dispatch.html", rows=rows)
