"""Intake's pages: the operator's call console, and the public forms (市长信箱, 网上留言, 进度查询)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from jiesu.errors import ApiError, validation_fields
from jiesu.identity import User
from jiesu.web import Message, RuntimeDep, page, redirect_with, require
from schemas.enums import KIND_LABELS, Channel, Kind, Role, Urgency
from schemas.events import utcnow
from services.intake import files, mail, service
from services.intake.api import NUMBER_AS_TYPED, look_up, progress_view
from services.intake.domain import attachments as attachment_rules
from services.intake.domain import challenge
from services.intake.domain.submission import MAX_DESCRIPTION, MAX_SUBJECT, TicketSubmission, show_query_code
from services.intake.limits import FORM_LIMIT, UPLOAD_LIMIT, client_address, limited

console_pages = APIRouter(include_in_schema=False)
letter_pages = APIRouter(include_in_schema=False, route_class=limited(UPLOAD_LIMIT))
lookup_pages = APIRouter(include_in_schema=False, route_class=limited(FORM_LIMIT))

LETTERS_PER_ADDRESS = 20  # form posts per hour and client address (corrections included)

FIELD_LABELS = {
    "kind": "类型", "urgency": "紧急程度", "subject": "标题", "description": "内容", "citizen.name": "姓名",
    "citizen.phone": "联系电话", "citizen.email": "电子邮箱", "location.address": "地址",
    "location.district": "区", "location.street": "街道", "attachments": "附件", "challenge": "验证题",
    "answer": "答复内容", "duplicate_of_number": "重复件",
}

# "noun" is what the page calls what the citizen sends: a letter (来信) to the mailbox, a message (留言) online.
CHANNELS = {
    "mailbox": {"channel": Channel.MAILBOX, "title": "市长信箱", "noun": "来信", "path": "/intake/mailbox",
                "intro": "您可以在这里给市长写信，反映问题、提出意见建议。来信由 12345 热线受理，转有关部门办理并答复。"},
    "online": {"channel": Channel.ONLINE, "title": "网上留言", "noun": "留言", "path": "/intake/online",
               "intro": "您可以在这里留言反映问题、咨询政策。留言由 12345 热线受理，转有关部门办理并答复。"},
}


Operator = Annotated[User, Depends(require(Role.OPERATOR))]
# Which mail to citizens a resend on the console is about (mail.CITIZEN_MAIL): receipts unless the form says otherwise.
MailKind = Annotated[Literal["receipt", "invitation"], Form(alias="mail")]


@console_pages.get("/intake/console", response_class=HTMLResponse)
async def console(request: Request, rt: RuntimeDep, user: Operator,
                  caller: Annotated[str, Query(max_length=32)] = "",
                  call_id: Annotated[str, Query(max_length=120)] = "",
                  done: Message = "", refused: Message = "", refused_en: Message = "") -> HTMLResponse:
    """来电登记: the form the operator fills while talking, keyboard first; beside it, the receipts and rating
    invitations that could not be delivered lately, so that someone tells those citizens their ticket number (or
    where to rate the reply) another way, or sends the mail again once the address or the mail server is put right."""
    store, since = rt.store("intake"), utcnow() - mail.RECENT_FAILURES
    failed = [(kind, rows) for kind in mail.CITIZEN_MAIL.values()
              if (rows := await mail.failed_receipts(store, since=since, kind=kind))]
    return page(request, "intake_console.html", title="来电登记", caller=caller, call_id=call_id,
                kinds=list(Kind), urgencies=list(Urgency), max_subject=MAX_SUBJECT, max_description=MAX_DESCRIPTION,
                failed=failed, failed_days=mail.RECENT_FAILURES.days, done=done, refused=refused,
                refused_en=refused_en)


def _console_with(**messages: str) -> RedirectResponse:
    """Back to the console's list of mail given up, with what was done or why it was refused."""
    return redirect_with("/intake/console", fragment="failed-receipts", **messages)


@console_pages.post("/intake/receipts/{number}/resend")
async def resend_receipt(number: str, rt: RuntimeDep, user: Operator, which: MailKind = "receipt") -> RedirectResponse:
    """重新发送 one receipt (or rating invitation) that was given up, once the citizen's address or the mail server
    is put right."""
    kind = mail.CITIZEN_MAIL[which]
    try:
        await mail.resend_receipt(rt.store("intake"), rt.settings, number, kind)
    except ApiError as exc:
        return _console_with(refused=exc.zh, refused_en=exc.en)
    return _console_with(done=f"工单 {number} 的{kind.zh}已重新发送，稍后刷新查看是否送达。")


@console_pages.post("/intake/receipts/resend")
async def resend_receipts(rt: RuntimeDep, user: Operator, which: MailKind = "receipt") -> RedirectResponse:
    """全部重新发送: every receipt (or rating invitation) the console lists as given up."""
    kind = mail.CITIZEN_MAIL[which]
    try:
        resent = await mail.resend_receipts(rt.store("intake"), rt.settings, utcnow() - mail.RECENT_FAILURES, kind)
    except ApiError as exc:
        return _console_with(refused=exc.zh, refused_en=exc.en)
    if not resent:
        return _console_with(refused=f"没有停止重试的{kind.zh}，无需重新发送",
                             refused_en=f"No {kind.en} was given up: nothing to send again")
    return _console_with(done=f"已重新发送 {resent} 份{kind.zh}，稍后刷新查看是否送达。")


def _letter_page(request: Request, rt, which: str, *, values: dict | None = None, errors: list[dict] | None = None,
                 status_code: int = 200, dropped: list[str] | None = None) -> HTMLResponse:
    """The letter form; after a refusal, with what was written kept and the reasons. A browser cannot be given
    files back, so `dropped` names the attachments the citizen must choose again."""
    ch = challenge.issue(rt.secret)
    values = {"submission_id": str(uuid.uuid4()), "kind": "complaint", **(values or {})}
    response = page(request, "intake_letter.html", title=CHANNELS[which]["title"], form=CHANNELS[which],
                    which=which, values=values, errors=errors or [], challenge=ch, kinds=list(Kind),
                    kind_labels=KIND_LABELS, allowed=attachment_rules.ALLOWED_LABEL,
                    max_files=attachment_rules.MAX_FILES,
                    max_mb=attachment_rules.MAX_FILE_BYTES // 1024 // 1024, labels=FIELD_LABELS,
                    max_subject=MAX_SUBJECT, max_description=MAX_DESCRIPTION, dropped=dropped or [])
    response.status_code = status_code
    return response


def _error(field: str, zh: str, en: str) -> dict:
    return {"field": field, "zh": zh, "en": en}


async def _letter(request: Request, rt, which: str) -> HTMLResponse:
    store = rt.store("intake")
    if not await service.allow(store, f"letter:{client_address(request)}", limit=LETTERS_PER_ADDRESS,
                               window=timedelta(hours=1)):
        raise ApiError(429, "too_many_requests", "提交过于频繁，请一小时后再试", "Too many letters; try again in an hour",
                       headers={"Retry-After": "3600"})
    form = await request.form(max_files=attachment_rules.MAX_FILES + 1, max_fields=40)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    submission_id = values.get("submission_id", "")
    try:
        source_ref = f"form:{uuid.UUID(submission_id)}"
    except ValueError:
        return _letter_page(request, rt, which, values={**values, "submission_id": ""}, status_code=400,
                            errors=[_error("(form)", "页面已过期，请刷新后重新填写", "The form expired; reload it")])
    channel = CHANNELS[which]["channel"]
    existing = await service.find_by_source(store, channel, source_ref)
    if existing:  # the same form sent twice (double click, reload): the same letter
        return page(request, "intake_letter_done.html", title=CHANNELS[which]["title"], form=CHANNELS[which],
                    number=existing.number, query_code=show_query_code(existing.query_code),
                    received_at=existing.received_at)

    errors: list[dict] = []
    data = {
        "kind": values.get("kind") or "complaint", "subject": values.get("subject", ""),
        "description": values.get("description", ""), "may_publish": values.get("may_publish") == "on",
        "citizen": {"name": values.get("name", ""), "phone": values.get("phone", ""), "email": values.get("email", ""),
                    "confidential": values.get("confidential") == "on"},
        "location": {"address": values.get("address", "")}, "source_ref": source_ref,
    }
    sub = None
    try:
        sub = TicketSubmission.model_validate(data)
    except ValidationError as exc:
        errors.extend(validation_fields(exc.errors()))
    if sub and not (sub.citizen.phone or sub.citizen.email):
        errors.append(_error("citizen.phone", "请至少留下电话或电子邮箱，以便答复您",
                             "Give a phone number or an e-mail address so that we can reply"))
    uploads = [f for f in form.getlist("attachments") if isinstance(f, UploadFile) and f.filename]
    checked = []
    try:
        checked = attachment_rules.check_all([(f.filename, await f.read()) for f in uploads])
    except attachment_rules.AttachmentRejected as exc:
        errors.append(_error("attachments", exc.zh, exc.en))
    if not errors:
        try:
            nonce = challenge.verify(rt.secret, values.get("challenge_token", ""), values.get("challenge_answer", ""))
            if not await service.first_use(store, nonce):
                raise challenge.ChallengeFailed("验证题已使用过，请重新作答", "This check was already used; answer the new one")
        except challenge.ChallengeFailed as exc:
            errors.append(_error("challenge", exc.zh, exc.en))
    if errors:
        return _letter_page(request, rt, which, values=values, errors=errors, status_code=400,
                            dropped=[str(f.filename)[:100] for f in uploads])

    kept = await files.keep(rt.settings, checked)
    receipt = await service.accept(store, sub, channel=channel, operator=None, idempotency_key=None,
                                   tz=ZoneInfo(rt.settings.timezone), attachments=kept)
    return page(request, "intake_letter_done.html", title=CHANNELS[which]["title"], form=CHANNELS[which],
                number=receipt.number, query_code=show_query_code(receipt.query_code), received_at=receipt.received_at)


@letter_pages.get("/intake/mailbox", response_class=HTMLResponse)
async def mailbox_form(request: Request, rt: RuntimeDep) -> HTMLResponse:
    """市长信箱: the public letter form (no log-in)."""
    return _letter_page(request, rt, "mailbox")


@letter_pages.post("/intake/mailbox", response_class=HTMLResponse)
async def mailbox_send(request: Request, rt: RuntimeDep) -> HTMLResponse:
    return await _letter(request, rt, "mailbox")


@letter_pages.get("/intake/online", response_class=HTMLResponse)
async def online_form(request: Request, rt: RuntimeDep) -> HTMLResponse:
    """网上留言: the public message form (no log-in)."""
    return _letter_page(request, rt, "online")


@letter_pages.post("/intake/online", response_class=HTMLResponse)
async def online_send(request: Request, rt: RuntimeDep) -> HTMLResponse:
    return await _letter(request, rt, "online")


@lookup_pages.get("/intake/progress", response_class=HTMLResponse)
async def progress_form(request: Request,
                        number: Annotated[str, Query(max_length=NUMBER_AS_TYPED)] = "") -> HTMLResponse:
    """办理进度查询: by ticket number and the last four digits of the phone or the query code (查询码).
    `?number=` fills in the number (the link in a receipt e-mail); the code is never put in a link."""
    return page(request, "intake_progress.html", title="办理进度查询", values={"number": number}, result=None,
                error=None, number_max=NUMBER_AS_TYPED)


@lookup_pages.post("/intake/progress", response_class=HTMLResponse)
async def progress_result(request: Request, rt: RuntimeDep) -> HTMLResponse:
    form = await request.form(max_files=0, max_fields=5)
    values = {"number": str(form.get("number", ""))[:NUMBER_AS_TYPED], "proof": str(form.get("proof", ""))[:16]}
    try:
        found = await look_up(rt, request, values["number"], values["proof"])
    except ApiError as exc:
        response = page(request, "intake_progress.html", title="办理进度查询", values=values, result=None,
                        error=exc, number_max=NUMBER_AS_TYPED)
        response.status_code = exc.status
        return response
    return page(request, "intake_progress.html", title="办理进度查询", values=values,
                result=progress_view(found, for_page=True), error=None, number_max=NUMBER_AS_TYPED)
