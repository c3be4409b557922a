"""What both batch adapters share: SDK errors translated once, into shoal's ModelCallError family."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx2

from ..errors import ModelCallError, PermanentError, RateLimited, TransientError

__all__ = ["translated"]

T = TypeVar("T")


async def translated(awaitable: Awaitable[T], what: str) -> T:
    """Await one batch API call; SDK exceptions become ModelCallErrors naming `what`."""
    try:
        return await awaitable
    except (httpx2.TransportError, TimeoutError, OSError) as exc:
        raise TransientError(f"{what}: {type(exc).__name__}: {exc}", model=what) from exc
    except Exception as exc:
        status: int | None = getattr(exc, "status_code", None)
        if status is None:
            if type(exc).__name__ in ("APIConnectionError", "APITimeoutError"):
                raise TransientError(f"{what}: {exc}", model=what) from exc
            raise
        raise _by_status(status, f"{what}: HTTP {status}: {_message(exc)}", what) from exc


def _by_status(status: int, message: str, what: str) -> ModelCallError:
    if status == 429:
        return RateLimited(message, model=what, status=429)
    if status >= 500 or status in (408, 409):
        return TransientError(message, model=what, status=status)
    return PermanentError(message, model=what, status=status)


def _message(exc: Exception) -> str:
    body: Any = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
