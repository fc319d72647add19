"""Errors a person can act on: a stable code and a message in Chinese and English."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from jiesu.logging import get_logger

log = get_logger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, zh: str, en: str, *, fields: list[dict] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {en}")
        self.status = status
        self.code = code
        self.zh = zh
        self.en = en
        self.fields = fields or []
        self.headers = headers

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": f"{self.zh} / {self.en}", "zh": self.zh, "en": self.en}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


# pydantic error types → Chinese; the English comes from pydantic itself. A validator of our own may give its
# error's Chinese in the error's context instead (`PydanticCustomError(type, english, {"zh": chinese})`).
_ZH = {
    "missing": "必填项未填写",
    "string_too_short": "内容太短",
    "string_too_long": "内容太长",
    "string_pattern_mismatch": "格式不正确",
    "enum": "不是允许的选项",
    "literal_error": "不是允许的选项",
    "int_parsing": "应为整数",
    "float_parsing": "应为数字",
    "bool_parsing": "应为是或否",
    "datetime_parsing": "日期时间格式不正确",
    "datetime_from_date_parsing": "日期时间格式不正确",
    "uuid_parsing": "编号格式不正确",
    "extra_forbidden": "不接受此字段",
    "too_long": "条目太多",
    "greater_than_equal": "数值太小",
    "less_than_equal": "数值太大",
    "json_invalid": "JSON 格式错误",
    "model_attributes_type": "应为对象",
    "dict_type": "应为对象",
    "string_type": "应为文本",
    "value_error": "取值不正确",
    "phone_format": "只能由数字组成（可用空格、“-”或括号分隔），可以“+”开头，至少 5 位",
}


def validation_fields(errors: list[dict]) -> list[dict]:
    fields = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header", "form")]
        fields.append({"field": ".".join(loc) or "(body)", "type": e.get("type"),
                       "zh": (e.get("ctx") or {}).get("zh") or _ZH.get(e.get("type", ""), "取值不正确"),
                       "en": e.get("msg", "invalid value")})
    return fields


API_PATHS = ("/api/", "/open311/")


async def opened_from_pages(request: Request) -> None:
    """A dependency for the few API routes pages link to and people open in the browser (an attachment's
    download): a browser's navigation to them is refused with a page, everyone else still with the JSON body.

    Give it in the route's `dependencies`, which run before the parameters' own: a refusal by `require` then
    knows it too, and sends the person to log in rather than showing them JSON.
    """
    request.state.opened_from_pages = True


def reads_json(request: Request) -> bool:
    """Whether the caller is a script that reads the JSON error body itself (README, "Errors").

    API tokens (an Authorization header), htmx (HX-Request), the pages' fetch calls (they send X-CSRF-Token, or
    the browser says Sec-Fetch-Mode is not a navigation), clients that ask for JSON and not HTML, and whatever
    is sent to an API or Open311 path but for a browser's navigation to a route opened from pages.
    """
    headers = request.headers
    if "authorization" in headers or "hx-request" in headers or "x-csrf-token" in headers:
        return True
    if headers.get("sec-fetch-mode", "navigate") != "navigate":
        return True
    accept = headers.get("accept", "")
    if request.url.path.startswith(API_PATHS):
        navigation = request.method in ("GET", "HEAD") and "text/html" in accept
        return not (navigation and getattr(request.state, "opened_from_pages", False))
    return "application/json" in accept and "text/html" not in accept


def wants_page(request: Request) -> bool:
    """Whether a refusal goes to a person's browser that navigated or posted a plain form, and so is shown as a page:
    not a script (`reads_json`), and asking for HTML."""
    return not reads_json(request) and "text/html" in request.headers.get("accept", "")


PageRenderer = Callable[[Request, ApiError], Response]


def install(app: FastAPI, page: PageRenderer | None = None) -> None:
    """Every error as JSON, or as the page `page` renders where `wants_page` says a person is reading it."""

    def respond(request: Request, err: ApiError) -> Response:
        if page is not None and wants_page(request):
            return page(request, err)
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        fields = validation_fields(exc.errors())
        summary_zh = "；".join(f"{f['field']}：{f['zh']}" for f in fields[:5])
        summary_en = "; ".join(f"{f['field']}: {f['en']}" for f in fields[:5])
        return respond(request, ApiError(422, "invalid_input", f"提交的内容有误：{summary_zh}",
                                         f"Invalid input: {summary_en}", fields=fields))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        zh = {404: "未找到", 405: "不支持此操作", 401: "请先登录", 403: "无权访问"}.get(exc.status_code, "请求有误")
        return respond(request, ApiError(exc.status_code, f"http_{exc.status_code}", zh, str(exc.detail),
                                         headers=getattr(exc, "headers", None)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", path=request.url.path)
        return respond(request, ApiError(500, "internal_error", "系统内部错误，请稍后重试；如仍失败请联系管理员",
                                         "Internal error; please retry later, and contact the administrator if it "
                                         "persists"))
