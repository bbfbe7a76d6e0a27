"""HTTP errors with a JSON body that names the problem."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

__all__ = ["Problem", "invalid"]


class Problem(Exception):
    """A request the gateway refuses: `status`, a short `error` code and a `reason` that
    tells what to change."""

    def __init__(
        self, status: int, error: str, reason: str, detail: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.detail = detail

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.error, "reason": self.reason}
        if self.detail is not None:
            # The shape of FastAPI's validation errors, which the official client parses.
            body["detail"] = self.detail
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def invalid(parameter: str, reason: str, kind: str = "value_error") -> Problem:
    """A 422 for one bad query parameter (or header)."""
    detail = [{"loc": ["query", parameter], "msg": reason, "type": kind}]
    return Problem(422, "invalid_request", f"{parameter}: {reason}", detail)
