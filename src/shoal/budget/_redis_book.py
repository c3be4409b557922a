"""Connecting to the shared budget's Redis, and the book that hands out one `SharedBudget` per model.

`SharedBook.connect` (or `budget.open_budget_book`) checks the Redis at `[budget] redis_url` before
anything runs: a malformed URL, a refused connection or a missing password is a ConfigError (exit 2,
one line naming the URL, any password masked). During the job the book sends a heartbeat per budget,
and when Redis stops answering it backs off and, past `redis_timeout_s`, asks the job to drain.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .._clock import Clock
from ..config import BudgetConfig, ModelLimits
from ..errors import ConfigError
from . import _lua
from ._budget import BudgetSettings
from ._redis import SharedBudget

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "BEAT_TTL_S",
    "SharedBook",
    "budget_key",
    "connect_redis",
    "redacted_url",
]

STATE_TTL_S = 3600  # a budget nobody touched for an hour is forgotten
BEAT_TTL_S = 10.0  # a process not heard from for this long no longer counts as using the budget
BEAT_EVERY_S = 2.0
_SALT = "shoal-budget-v1"


def budget_key(namespace: str, model_key: str, api_key: str | None) -> str:
    """The Redis key of one budget: the model and a short salted hash of the API key (never the key)."""
    digest = hashlib.sha256(f"{_SALT}:{namespace}:{api_key or ''}".encode()).hexdigest()[:16]
    return f"{namespace}:budget:{model_key}:{digest}"


def redacted_url(url: str) -> str:
    """The URL without its password, fit to print."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}:***@" if parts.username else ":***@"
        return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "(unparseable URL)"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


async def connect_redis(url: str) -> Redis:
    """A connected client, or ConfigError (exit 2) with one line naming the URL."""
    try:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError
    except ImportError:
        raise ConfigError(
            "[budget] redis_url is set but redis-py is not installed: pip install 'shoal[redis]'"
        ) from None
    shown = redacted_url(url)
    try:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=5.0, retry_on_timeout=False
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[budget] redis_url {shown}: not a Redis URL: {_one_line(exc)}") from None
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        why = _one_line(exc)
        if "auth" in why.lower() or "HELLO must be called" in why:
            why = f"it needs a password (redis://:PASSWORD@host:port/db) or another one: {why}"
        raise ConfigError(f"[budget] redis_url {shown}: cannot use Redis: {why}") from None
    return client


class SharedBook:
    """Hands out the shared budget of each provider model (on this job's API key for its provider).

    Build it with `SharedBook.connect(...)` (or `open_budget_book`); close it with `aclose()`.
    """

    shared = True

    def __init__(
        self,
        client: Redis,
        config: BudgetConfig,
        limits: dict[str, ModelLimits],
        api_keys: Callable[[str], str | None],
        *,
        clock: Clock,
        rng: random.Random,
        settings: BudgetSettings | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        from redis.exceptions import RedisError

        self.client = client
        self.config = config
        self.url = redacted_url(config.redis_url or "")
        self._limits = limits
        self._api_keys = api_keys
        self.clock = clock
        self.rng = rng
        self.settings = settings or BudgetSettings()
        self._on_lost = on_lost
        self.redis_errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        self.scripts = {
            "acquire": client.register_script(_lua.ACQUIRE),
            "settle": client.register_script(_lua.SETTLE),
            "observe": client.register_script(_lua.OBSERVE),
            "rate_limited": client.register_script(_lua.RATE_LIMITED),
            "beat": client.register_script(_lua.BEAT),
        }
        self.process_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._budgets: dict[str, SharedBudget] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost_since: float | None = None
        self._failures = 0
        self.lost_count = 0
        self._beater: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        config: BudgetConfig,
        limits: dict[str, ModelLimits],
        api_keys: Callable[[str], str | None],
        *,
        clock: Clock,
        rng: random.Random,
        settings: BudgetSettings | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> SharedBook:
        """Connect to `config.redis_url` (ConfigError, exit 2, when it cannot be used)."""
        if not config.redis_url:
            raise ConfigError("[budget] redis_url is not set")
        client = await connect_redis(config.redis_url)
        return cls(client, config, limits, api_keys, clock=clock, rng=rng, settings=settings, on_lost=on_lost)

    def for_model(self, model_key: str) -> SharedBudget:
        budget = self._budgets.get(model_key)
        if budget is None:
            provider = model_key.split(":", 1)[0]
            key = budget_key(self.config.namespace, model_key, self._api_keys(provider))
            budget = SharedBudget(model_key, self._limits.get(model_key, ModelLimits()), key, self)
            self._budgets[model_key] = budget
            if self._beater is None:
                self._beater = asyncio.ensure_future(self._beat_forever())
        return budget

    def all(self) -> list[SharedBudget]:
        return list(self._budgets.values())

    async def run_script(self, script: Any, key: str, args: tuple[object, ...]) -> list[Any]:
        settings = self.settings
        common = (settings.burst_s, settings.recovery_per_s, STATE_TTL_S, BEAT_TTL_S, self.process_id)
        result: list[Any] = await script(keys=[key, key + ":procs"], args=[*common, *args])
        return result

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _beat_forever(self) -> None:
        while True:
            await self.clock.sleep(BEAT_EVERY_S)
            for budget in list(self._budgets.values()):
                try:
                    await budget.beat()
                except self.redis_errors:
                    pass

    # -- Redis lost and found -----------------------------------------------------------------

    async def lost(self, exc: BaseException) -> None:
        """Redis did not answer: wait with backoff; past redis_timeout_s, drain the job."""
        now = self.clock.now()
        if self._lost_since is None:
            self._lost_since = now
            self.lost_count += 1
        self._failures += 1
        gone = now - self._lost_since
        if gone >= self.config.redis_timeout_s and self._on_lost is not None:
            why = _one_line(exc)
            self._on_lost(f"shared rate budget: Redis {self.url} has not answered for {gone:.0f}s: {why}")
        delay = min(5.0, 0.1 * 2 ** min(self._failures, 6)) * self.rng.uniform(0.5, 1.0)
        await self.clock.sleep(delay)

    def found(self) -> None:
        self._lost_since = None
        self._failures = 0

    async def aclose(self) -> None:
        if self._beater is not None:
            self._beater.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        errors: tuple[type[BaseException], ...] = (*self.redis_errors, TimeoutError)
        for budget in self._budgets.values():
            try:  # leave at once rather than when the heartbeat expires
                await asyncio.wait_for(self.client.zrem(budget.redis_key + ":procs", self.process_id), 1.0)
            except errors:
                break
        await self.client.aclose()
