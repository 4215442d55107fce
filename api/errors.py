"""One error shape for every response: ``{"error": name, "detail": message}``.

    ApiError                 a handled failure with an HTTP status
      Unauthorized (401)     no credential, or one that is unknown, revoked or expired
      Forbidden (403)        a valid credential without the right role (admin routes, tenant routes)
      NotFound (404)         unknown or another tenant's account, region or resource (never 403:
                             existence is not leaked)
      Conflict (409)         a name that is taken
      RateLimited (429)      the key's token bucket is empty; ``Retry-After`` says when to come back
      Unavailable (503)      a dependency (Ray, the store) does not answer
    payload_too_large (413)  a body over ``max_body_bytes``: refused by api/limits.py before any route runs
    RequestValidationError   bad path, query or body field (422), the field named in ``detail``
    Exception                anything else (500), logged, with no internals in the body
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    status_code = 400
    error = "bad_request"

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class Unauthorized(ApiError):
    status_code = 401
    error = "unauthorized"

    def __init__(self, detail: str = "send 'Authorization: Bearer <API key>'") -> None:
        super().__init__(detail, {"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code = 403
    error = "forbidden"


class NotFound(ApiError):
    status_code = 404
    error = "not_found"


class Conflict(ApiError):
    status_code = 409
    error = "conflict"


class RateLimited(ApiError):
    status_code = 429
    error = "rate_limited"

    def __init__(self, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s)) if math.isfinite(retry_after_s) else 60
        super().__init__(f"too many requests for this API key; retry in {seconds} s", {"Retry-After": str(seconds)})


class Unavailable(ApiError):
    status_code = 503
    error = "unavailable"


class InvalidInput(ApiError):
    status_code = 422
    error = "validation_error"


def _field(loc: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in loc)


def error_body(error: str, detail: str) -> dict[str, str]:
    return {"error": error, "detail": detail}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.error, exc.detail), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse(error_body("validation_error", detail), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(name, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)
