"""The fake model provider: rate limits, injected faults, latency and made-up answers.

It speaks plain records (FakeCall in, FakeResult out); the HTTP server and the in-process
`rehearsal` provider put their own wire formats around it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import get_args

from .._clock import Clock, SystemClock
from .._tokens import estimate_tokens
from ._answers import cut_to_tokens, json_answer, prompt_digest, prose, prose_tokens
from ._hold import Hold
from ._limits import ServerLimit, rate_headers, retry_headers
from ._settings import ALL_KINDS, FakeCall, FakeReply, FakeResult, FakeSettings, FakeToolCall, ResultKind

__all__ = ["FakeBackend"]

# The kind each drawn fault produces.
_FAULT_RESULT: dict[str, ResultKind] = {
    "error_500": "error",
    "error_503": "error",
    "drop": "drop",
    "hang": "hang",
    "empty": "empty",
    "truncated": "truncated",
}


@dataclass(frozen=True, slots=True)
class _Answer:
    text: str
    output_tokens: int
    finish_reason: str
    tool_call: FakeToolCall | None = None


class FakeBackend:
    """Answers FakeCalls like a hosted provider would, under the configured limits and faults.

    All state lives on the instance and changes only between awaits, so any number of concurrent
    `handle` calls in one event loop see consistent buckets without a lock.
    """

    def __init__(
        self, settings: FakeSettings, *, clock: Clock | None = None, rng: random.Random | None = None
    ) -> None:
        self.settings = settings
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random(settings.seed)
        now = self._clock.now()
        limits = settings.limits
        self._requests = ServerLimit(limits.rpm, limits.window_s, now) if limits.rpm else None
        self._tokens = ServerLimit(limits.tpm, limits.window_s, now) if limits.tpm else None
        self._reply_uses = [0] * len(settings.replies)
        self._stats: dict[str, int] = dict.fromkeys(("requests", *get_args(ResultKind)), 0)
        self.hold = Hold()  # tests close it to keep admitted requests in flight
        self._stats["outage"] = 0  # requests refused by the outage window (also counted by kind)
        self._in_flight = 0  # requests being worked on, for the capacity model
        self._first_request_at: float | None = None

    @property
    def stats(self) -> dict[str, int]:
        """Counts per result kind, plus "requests" for all calls (a copy)."""
        return dict(self._stats)

    async def handle(self, call: FakeCall) -> FakeResult:
        """Answer one call as a hosted provider would: limits first, then a fault or an answer."""
        self._stats["requests"] += 1
        outage = self._outage(call)
        if outage is not None:
            return outage
        refused = self._admit(call)
        if refused is not None:
            return refused
        await self.hold.passage()
        self._in_flight += 1
        try:
            return await self._serve(call)
        finally:
            self._in_flight -= 1

    async def _serve(self, call: FakeCall) -> FakeResult:
        fault = self._draw_fault()
        kind: ResultKind = _FAULT_RESULT[fault] if fault else "ok"
        self._stats[kind] += 1
        if fault in ("error_500", "error_503"):
            return await self._error(call, 500 if fault == "error_500" else 503)
        if kind == "hang":
            # Tokens stay taken: a provider bills the work even when the answer never arrives.
            await self._clock.sleep(self.settings.hang_s)
            return FakeResult("hang", 200, "", "stop", call.prompt_tokens, 0, self._headers(call.api))
        answer = self._answer(call, kind)
        await self._clock.sleep(self._latency(answer.output_tokens))
        if kind != "drop":
            self._settle(call, answer.output_tokens)
        return FakeResult(
            kind,
            200,
            answer.text,
            answer.finish_reason,
            call.prompt_tokens,
            answer.output_tokens,
            self._headers(call.api),
            tool_call=answer.tool_call if kind == "ok" else None,
        )

    # -- capacity and outages --------------------------------------------------------------

    def outage_active(self) -> bool:
        """Whether the configured outage window covers now (it starts with the first request)."""
        after = self.settings.outage_after_s
        if after is None or self._first_request_at is None:
            return False
        elapsed = self._clock.now() - self._first_request_at
        return after <= elapsed < after + self.settings.outage_for_s

    def _outage(self, call: FakeCall) -> FakeResult | None:
        if self._first_request_at is None:
            self._first_request_at = self._clock.now()
        if not self.outage_active():
            return None
        self._stats["outage"] += 1
        if self.settings.outage_mode == "drop":
            self._stats["drop"] += 1
            return FakeResult("drop", 200, "", "stop", call.prompt_tokens, 0, {})
        self._stats["error"] += 1
        return FakeResult(
            "error", 503, "The fake server is down (outage window).", "stop", call.prompt_tokens, 0, {}
        )

    def _load_factor(self) -> float:
        """Latency multiplier: 1 up to `capacity` requests in flight, then in proportion to them."""
        capacity = self.settings.capacity
        if capacity is None or self._in_flight <= capacity:
            return 1.0
        return self._in_flight / capacity

    # -- limits ----------------------------------------------------------------------------

    def _admit(self, call: FakeCall) -> FakeResult | None:
        """Take the request and its reservation (prompt + max_tokens) from the buckets, or refuse it.

        A refusal takes nothing, as with hosted providers.
        """
        now = self._clock.now()
        reserved = call.prompt_tokens + call.max_tokens
        if self._tokens is not None and reserved > self._tokens.capacity:
            return self._too_large(call, reserved)
        request_wait = self._wait_s(self._requests, 1, now)
        wait = max(request_wait, self._wait_s(self._tokens, reserved, now))
        if wait > 0:
            self._stats["rate_limited"] += 1
            limit = "requests" if request_wait >= wait else "tokens"
            message = f"Rate limit reached for {limit} (fake server). Please try again in {wait:.3f}s."
            headers = self._headers(call.api, now) | retry_headers(wait)
            return FakeResult("rate_limited", 429, message, "stop", call.prompt_tokens, 0, headers)
        if self._requests is not None:
            self._requests.take(1, now)
        if self._tokens is not None:
            self._tokens.take(reserved, now)
        return None

    @staticmethod
    def _wait_s(bucket: ServerLimit | None, amount: float, now: float) -> float:
        return 0.0 if bucket is None else bucket.wait_s(amount, now)

    def _settle(self, call: FakeCall, output_tokens: int) -> None:
        """Give back the part of the max_tokens reservation the answer did not use, if refunding."""
        unused = call.max_tokens - output_tokens
        if self._tokens is not None and unused > 0 and self.settings.limits.refund_unused:
            self._tokens.give(unused, self._clock.now())

    def _headers(self, api: str, now: float | None = None) -> dict[str, str]:
        """The buckets as they stand at `now` (default: the clock's now)."""
        if not self.settings.rate_headers:
            return {}
        if now is None:
            now = self._clock.now()
        return rate_headers(api, self._requests, self._tokens, now, self._clock.wall())

    def _too_large(self, call: FakeCall, reserved: int) -> FakeResult:
        # Refused outright: waiting cannot help, so a 429 would make a client retry forever.
        assert self._tokens is not None
        self._stats["error"] += 1
        window = self.settings.limits.window_s
        message = (
            f"Request too large: it needs {reserved} tokens ({call.prompt_tokens} prompt + "
            f"{call.max_tokens} max_tokens), but a {window:g} s window of tpm={self._tokens.limit} "
            f"holds only {int(self._tokens.capacity)}; lower max_tokens or raise tpm or the window."
        )
        return FakeResult("error", 400, message, "stop", call.prompt_tokens, 0, self._headers(call.api))

    # -- faults and answers ----------------------------------------------------------------

    def _draw_fault(self) -> str | None:
        faults = self.settings.faults
        if faults.total <= 0:
            return None
        draw = self._rng.random()
        edge = 0.0
        for name in ALL_KINDS:
            edge += getattr(faults, name)
            if draw < edge:
                return name
        return None

    def _latency(self, output_tokens: int) -> float:
        base = (self.settings.latency_s + self.settings.per_token_s * output_tokens) * self._load_factor()
        jitter = self.settings.jitter
        return base * (1.0 + self._rng.uniform(-jitter, jitter)) if jitter else base

    async def _error(self, call: FakeCall, status: int) -> FakeResult:
        await self._clock.sleep(self._latency(0))
        message = (
            "The fake server injected an internal error."
            if status == 500
            else "The fake server is overloaded (injected)."
        )
        return FakeResult("error", status, message, "stop", call.prompt_tokens, 0, self._headers(call.api))

    def _answer(self, call: FakeCall, kind: ResultKind) -> _Answer:
        if kind == "empty":
            return _Answer("", 0, "stop")
        digest = prompt_digest(call.prompt_text)
        scripted = self._scripted(call.last_message or call.prompt_text)
        if scripted is None and call.schema is None:
            if kind == "truncated":  # the model wanted to say more than max_tokens allows
                return _Answer(
                    prose(self.settings.label, digest, call.max_tokens, finished=False),
                    call.max_tokens,
                    "length",
                )
            tokens = prose_tokens(call.max_tokens, digest)
            return _Answer(prose(self.settings.label, digest, tokens), tokens, "stop")
        if scripted is not None and scripted.call is not None:
            # The arguments stand for the answer's text: what the call costs and how it is cut.
            text = json.dumps(scripted.call.args, separators=(",", ":"), ensure_ascii=False)
            if kind == "ok" and estimate_tokens(text) <= call.max_tokens:
                return _Answer(text, estimate_tokens(text), "stop", scripted.call)
        elif scripted is not None:
            text = scripted.reply
        else:
            assert call.schema is not None
            text = json_answer(call.schema, self.settings.label, digest)
        if kind == "truncated":
            # Cut mid-way, so a JSON answer no longer parses.
            return _Answer(text[: max(0, len(text) // 2)], call.max_tokens, "length")
        tokens = estimate_tokens(text)
        if tokens > call.max_tokens:  # too long for the limit: cut off, as a real model would be
            return _Answer(cut_to_tokens(text, call.max_tokens), call.max_tokens, "length")
        return _Answer(text, tokens, "stop")

    def _scripted(self, prompt_text: str) -> FakeReply | None:
        for index, reply in enumerate(self.settings.replies):
            if reply.match not in prompt_text:
                continue
            if reply.times is not None and self._reply_uses[index] >= reply.times:
                continue
            self._reply_uses[index] += 1
            return reply
        return None
