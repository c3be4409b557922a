"""shoal.fake: the fake backend, its OpenAI/Anthropic HTTP server and the `fake-server` command."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx2
import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from shoal._tokens import estimate_tokens
from shoal.cli import fake_server as fake_server_cli
from shoal.fake import (
    ALL_KINDS,
    FakeBackend,
    FakeCall,
    FakeLimits,
    FakeReply,
    FakeServer,
    FakeSettings,
    FaultRates,
)
from shoal.providers import parse_rate_headers

from clocks import GatedClock, VirtualClock

# The SDKs (about 3.5 s of CPU to import) are imported by the tests that use them, not by every
# xdist process that collects this file.
if TYPE_CHECKING:
    import anthropic
    import openai

# -- helpers -----------------------------------------------------------------------------------


# The suite's virtual clock, at a wall time in 2027 so that reset headers look real.
FakeClock = partial(VirtualClock, epoch=1_800_000_000.0)


def call(prompt: str = "Summarize: the quick brown fox.", max_tokens: int = 100, **kw: Any) -> FakeCall:
    api = kw.pop("api", "openai")
    return FakeCall(api, "fake-model", prompt, estimate_tokens(prompt), max_tokens, **kw)


def quick(**kw: Any) -> FakeSettings:
    return FakeSettings(**{"latency_s": 0.0, "jitter": 0.0, **kw})


def openai_client(server: FakeServer) -> openai.AsyncOpenAI:
    import openai

    return openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)


def anthropic_client(server: FakeServer) -> anthropic.AsyncAnthropic:
    import anthropic

    return anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)


class Color(StrEnum):
    red = "red"
    green = "green"


class Author(BaseModel):
    name: str
    email: str = Field(pattern=r".+@.+")
    born: date


class Review(BaseModel):
    title: str = Field(min_length=3, max_length=40)
    stars: int = Field(ge=1, le=5)
    score: float = Field(gt=0, lt=1)
    color: Color
    mood: Literal["calm", "loud"]
    author: Author
    tags: list[str] = Field(min_length=2, max_length=4)
    coauthors: list[Author]
    counts: dict[str, int]
    note: str | None = None
    when: datetime


class Digest(BaseModel):
    """Review without the dict field, which pydantic-ai warns about for Anthropic's strict mode."""

    title: str
    stars: int = Field(ge=1, le=5)
    color: Color
    author: Author
    tags: list[str]
    note: str | None = None


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


# -- backend: answers ---------------------------------------------------------------------------


async def test_prose_answer_is_labelled_deterministic_and_sized_to_max_tokens() -> None:
    backend = FakeBackend(quick(), clock=FakeClock())
    first = await backend.handle(call(max_tokens=200))
    again = await backend.handle(call(max_tokens=200))
    other = await backend.handle(call("Something else entirely", max_tokens=200))
    assert first.kind == "ok" and first.status == 200 and first.finish_reason == "stop"
    assert first.text.startswith("[rehearsal] ")
    assert first.text == again.text and first.text != other.text
    assert 60 <= first.output_tokens <= 180
    assert abs(estimate_tokens(first.text) - first.output_tokens) <= 1
    tiny = await backend.handle(call(max_tokens=3))
    assert tiny.text.startswith("[rehearsal]") and 1 <= tiny.output_tokens <= 3


async def test_schema_answer_validates_against_a_pydantic_model() -> None:
    backend = FakeBackend(quick(), clock=FakeClock())
    for prompt in ("one", "two", "three"):
        result = await backend.handle(call(prompt, 1000, schema=Review.model_json_schema()))
        review = Review.model_validate_json(result.text)
        assert review.author.name.startswith("[rehearsal]")
        assert result.output_tokens == estimate_tokens(result.text)
    tree = await backend.handle(call(max_tokens=2000, schema=Tree.model_json_schema()))
    Tree.model_validate_json(tree.text)


async def test_json_answer_longer_than_max_tokens_is_cut_off() -> None:
    backend = FakeBackend(quick(), clock=FakeClock())
    result = await backend.handle(call(max_tokens=20, schema=Review.model_json_schema()))
    assert (result.finish_reason, result.output_tokens) == ("length", 20)
    with pytest.raises(ValueError):
        json.loads(result.text)


async def test_scripted_replies_win_and_respect_times() -> None:
    replies = (FakeReply("fox", "scripted fox", times=2), FakeReply("Summarize", "always"))
    backend = FakeBackend(quick(replies=replies), clock=FakeClock())
    texts = [(await backend.handle(call())).text for _ in range(3)]
    assert texts == ["scripted fox", "scripted fox", "always"]
    schema_call = call("nothing scripted here", schema={"type": "object"})
    assert (await backend.handle(schema_call)).text == "{}"


# -- backend: limits ----------------------------------------------------------------------------


async def test_rpm_burst_is_refused_with_retry_after_until_the_bucket_refills() -> None:
    clock = FakeClock()
    backend = FakeBackend(quick(limits=FakeLimits(rpm=600, window_s=1.0)), clock=clock)
    results = await asyncio.gather(*(backend.handle(call()) for _ in range(300)))
    kinds = [r.kind for r in results]
    assert kinds.count("ok") == 10 and kinds.count("rate_limited") == 290  # capacity 600 * 1 s / 60
    refused = results[-1]
    assert refused.status == 429
    assert refused.headers["retry-after"] == "1" and refused.headers["retry-after-ms"] == "100"
    snapshot = parse_rate_headers(refused.headers)
    assert (snapshot.limit_requests, snapshot.remaining_requests, snapshot.retry_after_s) == (600, 0, 0.1)
    assert snapshot.reset_requests_s == pytest.approx(1.0)
    clock.t += 0.1
    assert (await backend.handle(call())).kind == "ok"
    assert backend.stats["requests"] == 301 and backend.stats["rate_limited"] == 290


async def test_tpm_reserves_max_tokens_and_settles_to_the_real_usage() -> None:
    clock = GatedClock()
    limits = FakeLimits(tpm=60_000, window_s=1.0, refund_unused=True)
    settings = quick(limits=limits, replies=(FakeReply("fox", "short"),))
    backend = FakeBackend(settings, clock=clock)  # bucket capacity: 1000 tokens
    cost = call(max_tokens=450).prompt_tokens + 450
    in_flight = [asyncio.create_task(backend.handle(call(max_tokens=450))) for _ in range(2)]
    await asyncio.sleep(0)
    refused = await backend.handle(call(max_tokens=450))  # nothing answered yet: reservations count
    assert refused.kind == "rate_limited"
    assert float(refused.headers["retry-after-ms"]) == pytest.approx((3 * cost - 1000) / 1000 * 1000, abs=1)
    clock.gate.set()
    answered = await asyncio.gather(*in_flight)
    assert all(r.kind == "ok" and r.output_tokens == estimate_tokens("short") for r in answered)
    # Settlement gave back the unused max_tokens, so the same request now fits at the same instant.
    assert (await backend.handle(call(max_tokens=450))).kind == "ok"
    snapshot = parse_rate_headers(answered[-1].headers)
    assert snapshot.limit_tokens == 60_000
    assert snapshot.remaining_tokens == (1000 - 2 * (cost - 450 + estimate_tokens("short"))) * 60


async def test_request_larger_than_the_tpm_window_gets_a_400() -> None:
    backend = FakeBackend(quick(limits=FakeLimits(tpm=60_000, window_s=1.0)), clock=FakeClock())
    result = await backend.handle(call(max_tokens=5000))
    assert (result.kind, result.status) == ("error", 400)
    assert "too large" in result.text
    assert (await backend.handle(call(max_tokens=500))).kind == "ok"  # nothing was taken


async def test_headers_at_rest_report_the_configured_limits_in_both_styles() -> None:
    clock = FakeClock()
    limits = FakeLimits(rpm=500, tpm=150_000, window_s=2.0)
    backend = FakeBackend(quick(limits=limits), clock=clock)
    result = await backend.handle(call(max_tokens=10))
    openai_headers = parse_rate_headers(result.headers)
    assert (openai_headers.limit_requests, openai_headers.limit_tokens) == (500, 150_000)
    assert 148_000 < (openai_headers.remaining_tokens or 0) < 150_000
    clock.t += 60
    anthropic_result = await backend.handle(call(max_tokens=10, api="anthropic"))
    now = datetime.fromtimestamp(clock.wall(), UTC)
    snap = parse_rate_headers(anthropic_result.headers, now=lambda: now)
    assert (snap.limit_requests, snap.limit_tokens) == (500, 150_000)
    assert (snap.limit_input_tokens, snap.limit_output_tokens) == (150_000, 150_000)
    assert snap.remaining_requests == 470 and snap.reset_requests_s == pytest.approx(0.12, abs=0.002)
    assert not any(key.startswith("x-ratelimit") for key in anthropic_result.headers)


# -- backend: faults ----------------------------------------------------------------------------


async def test_fault_rates_roughly_hold_with_a_seeded_rng() -> None:
    settings = quick(faults=FaultRates.spread(0.2), seed=7)
    backend = FakeBackend(settings, clock=FakeClock())
    results = await asyncio.gather(*(backend.handle(call(f"prompt {i}")) for i in range(500)))
    stats = backend.stats
    faulty = sum(stats[k] for k in ("error", "drop", "hang", "empty", "truncated"))
    assert 75 <= faulty <= 125 and stats["ok"] == 500 - faulty
    assert all(stats[k] > 0 for k in ("drop", "hang", "empty", "truncated"))
    assert {r.status for r in results if r.kind == "error"} == {500, 503}
    for result in results:
        if result.kind == "empty":
            assert (result.text, result.output_tokens, result.finish_reason) == ("", 0, "stop")
        if result.kind == "truncated":
            assert (result.output_tokens, result.finish_reason) == (100, "length")
    again = FakeBackend(settings, clock=FakeClock())
    await asyncio.gather(*(again.handle(call(f"prompt {i}")) for i in range(500)))
    assert again.stats == stats


async def test_truncated_json_no_longer_parses() -> None:
    backend = FakeBackend(quick(faults=FaultRates(truncated=1.0)), clock=FakeClock())
    result = await backend.handle(call(max_tokens=500, schema=Review.model_json_schema()))
    assert (result.kind, result.finish_reason, result.output_tokens) == ("truncated", "length", 500)
    with pytest.raises(ValueError):
        json.loads(result.text)


def test_settings_reject_impossible_values() -> None:
    assert FaultRates.spread(0.3, ["500", "drop"]) == FaultRates(error_500=0.15, drop=0.15)
    assert set(ALL_KINDS) == {"error_500", "error_503", "drop", "hang", "empty", "truncated"}
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultRates.spread(0.1, ["500", "teapot"])
    with pytest.raises(ValueError):
        FaultRates(drop=0.7, hang=0.7)
    with pytest.raises(ValueError):
        FakeLimits(rpm=0)


# -- HTTP server --------------------------------------------------------------------------------


async def test_openai_and_anthropic_sdks_get_answers_with_rate_headers() -> None:
    limits = FakeLimits(rpm=3000, tpm=3_000_000)
    async with FakeServer(quick(limits=limits)) as server:
        async with openai_client(server) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-fake",
                messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
                max_completion_tokens=64,
            )
            completion = raw.parse()
            assert (completion.choices[0].message.content or "").startswith("[rehearsal]")
            assert completion.choices[0].finish_reason == "stop"
            assert completion.usage is not None and completion.usage.prompt_tokens == estimate_tokens(
                "Be brief.", "Hello"
            )
            snap = parse_rate_headers(raw.headers)
            assert (snap.limit_requests, snap.limit_tokens) == (3000, 3_000_000)
            assert [m.id for m in (await client.models.list()).data] == ["gpt-fake"]
        async with anthropic_client(server) as claude:
            raw_message = await claude.messages.with_raw_response.create(
                model="claude-fake",
                max_tokens=64,
                system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
            )
            message = await raw_message.parse()
            assert message.content[0].type == "text" and message.content[0].text.startswith("[rehearsal]")
            assert message.stop_reason == "end_turn"
            assert message.usage.input_tokens == estimate_tokens("Be brief.", "Hello")
            snap = parse_rate_headers(raw_message.headers)
            assert (snap.limit_requests, snap.limit_tokens, snap.limit_output_tokens) == (
                3000,
                3_000_000,
                3_000_000,
            )
        async with httpx2.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/health")).json() == {"status": "ok"}
            assert (await http.get("/stats")).json()["ok"] == 2


async def test_burst_beyond_rpm_gets_429s_that_both_sdks_recognise() -> None:
    import anthropic
    import openai

    backend = FakeBackend(quick(limits=FakeLimits(rpm=120, window_s=1.0)), clock=FakeClock())
    async with FakeServer(backend=backend) as server:  # 2 per window, and no refill on virtual time
        async with openai_client(server) as client:
            messages: Any = [{"role": "user", "content": "hi"}]
            outcomes = await asyncio.gather(
                *(client.chat.completions.create(model="m", messages=messages) for _ in range(5)),
                return_exceptions=True,
            )
            refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
            assert len(refused) == 3
            error = refused[0]
            assert error.response.headers["retry-after"] == "1"
            assert 0 < int(error.response.headers["retry-after-ms"]) <= 500
            body: Any = error.body
            assert body == {
                "message": body["message"],
                "type": "rate_limit_exceeded",
                "param": None,
                "code": "rate_limit_exceeded",
            }
            snap = parse_rate_headers(error.response.headers)
            assert (snap.limit_requests, snap.remaining_requests) == (120, 0)
        async with anthropic_client(server) as claude:
            with pytest.raises(anthropic.RateLimitError) as caught:
                await claude.messages.create(
                    model="c", max_tokens=10, messages=[{"role": "user", "content": "x"}]
                )
            error_body: Any = caught.value.body
            assert error_body["error"]["type"] == "rate_limit_error"
            assert parse_rate_headers(caught.value.response.headers).limit_requests == 120


async def test_tpm_reservation_and_refund_over_http() -> None:
    import openai

    # A 1000-token window refilling at 100 tokens/s: the 0.3 s of latency refill only 30 of them.
    limits = FakeLimits(tpm=6000, window_s=10.0, refund_unused=True)
    settings = quick(limits=limits, latency_s=0.3, replies=(FakeReply("hi", "ok"),))
    async with FakeServer(backend=FakeBackend(settings, clock=FakeClock())) as server:
        async with openai_client(server) as client:
            messages: Any = [{"role": "user", "content": "hi"}]

            def ask(max_tokens: int) -> Any:
                return client.chat.completions.create(model="m", messages=messages, max_tokens=max_tokens)

            # Two 600-token reservations do not fit a 1000-token window, though each answer is tiny.
            # The first is held in flight (past admission) while the second arrives, however slow
            # the machine: on the virtual clock its latency alone would not keep it there.
            hold = server.backend.hold
            hold.close(after=0)
            first = asyncio.ensure_future(ask(600))
            while hold.held < 1:
                await asyncio.sleep(0.01)
            with pytest.raises(openai.RateLimitError):
                await ask(600)
            hold.open()
            assert (await first).choices[0].message.content == "ok"
            # The admitted one settled to its real usage; without that refund 600 would not fit yet.
            assert (await ask(600)).choices[0].message.content == "ok"
            with pytest.raises(openai.BadRequestError, match="too large"):
                await ask(5000)


async def test_structured_output_in_each_shape_pydantic_ai_asks_for() -> None:
    schema = Review.model_json_schema()
    async with FakeServer(quick()) as server:
        async with openai_client(server) as client:
            messages: Any = [{"role": "user", "content": "Review this"}]
            native = await client.chat.completions.create(
                model="m",
                messages=messages,
                response_format={"type": "json_schema", "json_schema": {"name": "R", "schema": schema}},
            )
            Review.model_validate_json(native.choices[0].message.content or "")
            tool: Any = {"type": "function", "function": {"name": "final_result", "parameters": schema}}
            forced = await client.chat.completions.create(
                model="m",
                messages=messages,
                tools=[tool],
                tool_choice="required",
            )
            assert forced.choices[0].finish_reason == "tool_calls"
            tool_call: Any = (forced.choices[0].message.tool_calls or [])[0]
            assert tool_call.function.name == "final_result"
            Review.model_validate_json(tool_call.function.arguments)
        async with anthropic_client(server) as claude:
            user: Any = [{"role": "user", "content": "Review this"}]
            beta = await claude.beta.messages.create(
                model="c",
                max_tokens=2000,
                messages=user,
                output_config={"format": {"type": "json_schema", "schema": schema}},
            )
            text_block: Any = beta.content[0]
            Review.model_validate_json(text_block.text)
            # Forced, or free to choose: pydantic-ai's output tool is what a model would call.
            choices: list[Any] = [{"type": "any"}, {"type": "auto"}]
            for choice in choices:
                used = await claude.messages.create(
                    model="c",
                    max_tokens=2000,
                    messages=user,
                    tools=[{"name": "final_result", "input_schema": schema}],
                    tool_choice=choice,
                )
                block: Any = used.content[0]
                assert (block.type, block.name, used.stop_reason) == ("tool_use", "final_result", "tool_use")
                Review.model_validate(block.input)


async def test_pydantic_ai_agents_get_structured_output_from_both_apis() -> None:
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.openai import OpenAIProvider

    async with FakeServer(quick()) as server:
        oai = openai_client(server)
        claude = anthropic_client(server)
        async with oai, claude:
            models: list[Any] = [
                OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=oai)),
                AnthropicModel("claude-sonnet-4-6", provider=AnthropicProvider(anthropic_client=claude)),
            ]
            for model in models:
                for output_type in (Digest, NativeOutput(Digest)):
                    agent = Agent(model, output_type=output_type, model_settings={"max_tokens": 2000})
                    result = await agent.run("Review the fox")
                    assert isinstance(result.output, Digest)
        assert server.backend.stats["ok"] == 4


async def test_drop_is_a_connection_error_and_hang_never_answers() -> None:
    import openai

    async with FakeServer(quick(faults=FaultRates(drop=1.0))) as server:
        async with httpx2.AsyncClient(base_url=server.url) as http:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
                await http.post("/v1/chat/completions", json=body)
        async with openai_client(server) as client:
            with pytest.raises(openai.APIConnectionError):
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    async with FakeServer(quick(faults=FaultRates(hang=1.0), hang_s=60.0)) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=0.3) as http:
            with pytest.raises(httpx2.ReadTimeout):
                await http.post("/v1/messages", json={**body, "max_tokens": 10})
        assert server.backend.stats["hang"] == 1
    # Leaving the block returned promptly: the hung request ended when its client went away.


async def test_truncated_answers_finish_with_length() -> None:
    async with FakeServer(quick(faults=FaultRates(truncated=1.0))) as server:
        async with openai_client(server) as client:
            completion = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=40
            )
            assert completion.choices[0].finish_reason == "length"
            assert completion.usage is not None and completion.usage.completion_tokens == 40
        async with anthropic_client(server) as claude:
            message = await claude.messages.create(
                model="c", max_tokens=40, messages=[{"role": "user", "content": "hi"}]
            )
            assert message.stop_reason == "max_tokens"


async def test_bad_requests_get_400s_in_the_apis_error_shape() -> None:
    async with FakeServer(quick()) as server:
        async with httpx2.AsyncClient(base_url=server.url) as http:
            stream = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            response = await http.post("/v1/chat/completions", json=stream)
            assert response.status_code == 400
            assert "stream" in response.json()["error"]["message"]
            response = await http.post("/v1/messages", json={"model": "m", "messages": []})
            assert response.status_code == 400
            assert response.json()["error"]["type"] == "invalid_request_error"
            response = await http.post("/v1/messages", content=b"{not json")
            assert response.status_code == 400 and response.json()["type"] == "error"


def test_request_log_has_one_line_per_request_and_no_secrets(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    secret = "sk-test-SECRET-4242"
    backend = FakeBackend(quick(limits=FakeLimits(rpm=60, window_s=1.0)), clock=FakeClock())  # no refill
    with FakeServer(backend=backend, log_path=log) as server:
        with httpx2.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}) as http:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
            statuses = [http.post("/v1/chat/completions", json=body).status_code for _ in range(2)]
            anthropic_body = {**body, "model": "c"}
            statuses.append(
                http.post("/v1/messages", json=anthropic_body, headers={"x-api-key": secret}).status_code
            )
            http.get("/stats")
    assert statuses == [200, 429, 429]
    text = log.read_text()
    assert secret not in text and "authorization" not in text.lower() and "x-api-key" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(r["api"], r["status"], r["kind"]) for r in lines] == [
        ("openai", 200, "ok"),
        ("openai", 429, "rate_limited"),
        ("anthropic", 429, "rate_limited"),
    ]
    assert set(lines[0]) == {
        "ts",
        "api",
        "model",
        "prompt_tokens",
        "max_tokens",
        "status",
        "kind",
        "output_tokens",
        "latency_s",
    }
    assert lines[0]["max_tokens"] == 20 and lines[0]["output_tokens"] > 0


# -- CLI ---------------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    fake_server_cli.register(app)

    @app.command()
    def other() -> None:  # a second command, so `fake-server` is a subcommand as in shoal's CLI
        pass

    return app


def test_cli_builds_settings_and_prints_both_base_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    async def fake_serve(
        settings: FakeSettings, host: str, port: int, log_path: Path | None, **kw: Any
    ) -> None:
        seen.update(settings=settings, host=host, port=port, log_path=log_path)
        kw["on_ready"](f"http://{host}:{port}")

    monkeypatch.setattr(fake_server_cli, "serve", fake_serve)
    replies = tmp_path / "replies.json"
    replies.write_text(
        json.dumps([{"match": "fox", "reply": "a fox", "times": 2}, {"match": "x", "reply": "y"}])
    )
    args = ["fake-server", "--port", "9123", "--rpm", "50", "--tpm", "1000", "--window", "3"]
    args += ["--fault-rate", "0.2", "--faults", "503,drop", "--replies", str(replies), "--seed", "5"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    assert (
        "http://127.0.0.1:9123/v1" in result.output
        and "Anthropic base URL http://127.0.0.1:9123" in result.output
    )
    settings: FakeSettings = seen["settings"]
    assert settings.limits == FakeLimits(rpm=50, tpm=1000, window_s=3.0)
    assert settings.faults == FaultRates(error_503=0.1, drop=0.1)
    assert settings.replies == (FakeReply("fox", "a fox", 2), FakeReply("x", "y"))
    assert settings.seed == 5 and seen["port"] == 9123
