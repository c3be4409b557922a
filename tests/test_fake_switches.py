"""The fake server's switches that let it disagree with shoal: refunds and rate-limit headers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from shoal._tokens import estimate_tokens
from shoal.cli import fake_server as fake_server_cli
from shoal.fake import FakeBackend, FakeCall, FakeLimits, FakeReply, FakeServer, FakeSettings
from shoal.providers import parse_rate_headers


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_800_000_000.0 + self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


def call(max_tokens: int, prompt: str = "say fox") -> FakeCall:
    return FakeCall("openai", "m", prompt, estimate_tokens(prompt), max_tokens)


def settings(**kw: Any) -> FakeSettings:
    return FakeSettings(**{"latency_s": 0.0, "jitter": 0.0, "replies": (FakeReply("fox", "ok"),), **kw})


async def test_by_default_the_reservation_of_max_tokens_is_kept() -> None:
    clock = FakeClock()  # a 1000-token window; latency 0, so nothing refills between calls
    backend = FakeBackend(settings(limits=FakeLimits(tpm=60_000, window_s=1.0)), clock=clock)
    first = await backend.handle(call(450))
    assert first.kind == "ok" and first.output_tokens < 10
    # The tiny answer gave nothing back: two 450-token reservations no longer fit.
    second = await backend.handle(call(450))
    third = await backend.handle(call(450))
    assert (second.kind, third.kind) == ("ok", "rate_limited")
    reserved = 2 * (estimate_tokens("say fox") + 450)
    assert parse_rate_headers(second.headers).remaining_tokens == (1000 - reserved) * 60


async def test_refund_switch_gives_unused_tokens_back() -> None:
    clock = FakeClock()
    limits = FakeLimits(tpm=60_000, window_s=1.0, refund_unused=True)
    backend = FakeBackend(settings(limits=limits), clock=clock)
    kinds = [(await backend.handle(call(450))).kind for _ in range(5)]
    assert kinds == ["ok"] * 5  # each answer's unused max_tokens came back


async def test_no_rate_headers_mode_sends_none_even_on_a_429() -> None:
    import openai

    limits = FakeLimits(rpm=60, window_s=1.0)  # one request per window
    async with FakeServer(settings(limits=limits, rate_headers=False)) as server:
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="t", max_retries=0)
        async with client:
            messages: Any = [{"role": "user", "content": "say fox"}]
            ok = await client.chat.completions.with_raw_response.create(
                model="m", messages=messages, max_tokens=5
            )
            assert not any("ratelimit" in name.lower() for name in ok.headers)
            assert parse_rate_headers({k.lower(): v for k, v in ok.headers.items()}).empty
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model="m", messages=messages, max_tokens=5)
            headers = caught.value.response.headers
            assert not any("ratelimit" in name.lower() for name in headers)
            assert "retry-after" in headers  # the standard HTTP header stays


def test_cli_flags_set_both_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, FakeSettings] = {}

    async def fake_serve(
        settings: FakeSettings, host: str, port: int, log_path: Path | None, **kw: Any
    ) -> None:
        seen["settings"] = settings

    monkeypatch.setattr(fake_server_cli, "serve", fake_serve)
    app = typer.Typer()
    fake_server_cli.register(app)

    @app.callback()
    def main() -> None:
        pass

    runner = CliRunner()
    assert runner.invoke(app, ["fake-server", "--tpm", "1000"]).exit_code == 0
    assert seen["settings"].limits.refund_unused is False and seen["settings"].rate_headers is True
    result = runner.invoke(app, ["fake-server", "--tpm", "1000", "--refund-unused", "--no-rate-headers"])
    assert result.exit_code == 0, result.output
    assert seen["settings"].limits == FakeLimits(tpm=1000, refund_unused=True)
    assert seen["settings"].rate_headers is False
