"""One error shape for every response: ``{"error": name, "detail": message}``.

    ApiError                 a handled failure with an HTTP status
      NotFound (404)         unknown account, region or resource (never 403: existence is not leaked)
    RequestValidationError   bad path, query or body field (422), the field named in ``detail``
    Exception                anything else (500), logged, with no internals in the body
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class ApiError(Exception):
    status_code = 400
    error = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ApiError):
    status_code = 404
    error = "not_found"


def _field(loc: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": "validation_error", "detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal_error", "detail": "internal server error"}, status_code=500)
