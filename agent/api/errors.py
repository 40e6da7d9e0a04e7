"""Every error leaves the API as JSON `{error, detail}` with the status that fits.

Bad input is a 4xx, never a 500: request validation is 422 with one
`{field, message}` per problem, malformed JSON is 400, store lookups that miss
are 404, and refused actions (engine or store `ValueError`s) are 409. A full disk
(or the data dir below its free-space floor) is 507 naming it. An unexpected error is a
500 on a connection that stays usable (see `AnswerErrors`).
"""

from __future__ import annotations

import logging
import sqlite3
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.configs import Conflict, InvalidDependencies, NotFound
from store.space import StorageFull, is_storage_full

log = logging.getLogger(__name__)

ULID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"  # a log line's id: a cursor of the log routes
NOT_A_ULID = "not a log line's id (26 characters, a ULID)"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or unknown bearer token"},
    403: {"description": "the token's role is too low"},
    404: {"description": "no such thing"},
    409: {"description": "refused: conflicts with the current state"},
    422: {"description": "invalid input, one entry per field"},
    507: {"description": "the agent's disk is full or below its free-space floor"},
}


class ApiError(Exception):
    """Raised by route code for a deliberate 4xx answer."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(detail or error)
        self.status = status
        self.error = error
        self.detail = detail


def error_response(status: int, error: str, detail: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def readable(message: str) -> str:
    """A validator's own sentence, without pydantic's "Value error, " prefix."""
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def field_errors(errors: list[Any]) -> list[dict[str, str]]:
    """Pydantic error list → `[{field, message}]`; `field` is the dotted path inside the
    body or the query/path parameter name."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        message = readable(str(err.get("msg", "invalid")))
        if (err.get("ctx") or {}).get("pattern") == ULID_PATTERN:
            message = NOT_A_ULID  # rather than the pattern itself
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, _code(exc.status_code), exc.detail,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed_json", "the body is not valid JSON")
        return error_response(422, "validation_error", field_errors(errors))

    @app.exception_handler(ValidationError)
    async def _model_validation(_: Request, exc: ValidationError) -> JSONResponse:
        return error_response(422, "validation_error", field_errors(list(exc.errors())))

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(InvalidDependencies)
    async def _invalid_dependencies(_: Request, exc: InvalidDependencies) -> JSONResponse:
        return error_response(422, "invalid_dependencies", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # An id beyond SQLite's 64-bit integers (e.g. /runs/99999999999999999999): none such.
        return error_response(404, "not_found", "no such id (out of range)")

    @app.exception_handler(ValueError)
    async def _refused(_: Request, exc: ValueError) -> JSONResponse:
        # Engine refusals (EngineError is a ValueError) and store rule violations.
        return error_response(409, "refused", str(exc))

    @app.exception_handler(StorageFull)
    @app.exception_handler(sqlite3.Error)
    @app.exception_handler(OSError)
    async def _storage(_: Request, exc: Exception) -> JSONResponse:
        return storage_or_internal(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return storage_or_internal(exc)

    app.add_middleware(AnswerErrors)  # first added: innermost of the middlewares


def storage_or_internal(exc: BaseException) -> JSONResponse:
    if is_storage_full(exc):
        detail = str(exc) if isinstance(exc, StorageFull) else (
            f"the agent's disk is full ({exc}): nothing was changed; free space and retry")
        log.warning("refused: %s", detail)
        return error_response(507, "insufficient_storage", detail)
    log.error("unhandled error in API", exc_info=exc)
    return error_response(500, "internal_error", "unexpected error; see the agent's log")


class AnswerErrors:
    """An error no handler took becomes a 500 answer here. Starlette's own last resort
    answers and then re-raises, and uvicorn closes the connection for that: the client's
    next request on it was reset."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        from_outside: BaseException | None = None

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def reading() -> Message:
            nonlocal from_outside
            try:
                return await receive()
            except BaseException as exc:  # an outer middleware's (e.g. the body size cap)
                from_outside = exc
                raise

        try:
            await self.app(scope, reading, tracked)
        except Exception as exc:
            if started or exc is from_outside:
                raise  # half an answer is out, or it is the outer middleware's to answer
            await storage_or_internal(exc)(scope, receive, send)
