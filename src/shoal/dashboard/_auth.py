"""The dashboard's access token: every request must carry it (query, bearer header or X-Shoal-Token)."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["TokenGate", "new_token"]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _presented(scope: Scope) -> str | None:
    headers: dict[str, str] = {
        bytes(key).decode("latin-1").lower(): bytes(value).decode("latin-1")
        for key, value in scope["headers"]
    }
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    if "x-shoal-token" in headers:
        return headers["x-shoal-token"].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("token")
    return values[0] if values else None


class TokenGate:
    """401 without a token, 403 with a wrong one; constant-time comparison."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if len(token) < 16:
            raise ValueError("the access token must be at least 16 characters")
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _presented(scope)
        if token is None:
            await _refuse(scope, send, 401, "missing access token: open the URL shoal dashboard printed")
            return
        if not hmac.compare_digest(token.encode(), self._token):
            await _refuse(scope, send, 403, "wrong access token")
            return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = message.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
