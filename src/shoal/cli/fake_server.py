"""`shoal fake-server`: an OpenAI- and Anthropic-compatible fake provider for tests, demos and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ..fake import (
    FakeBatchSettings,
    FakeLimits,
    FakeReply,
    FakeSettings,
    FaultRates,
    RepliesFileError,
    read_replies,
)

__all__ = ["register"]

_ALL_FAULTS = "500,503,drop,hang,empty,truncated"


def register(app: typer.Typer) -> None:
    """Add the `fake-server` command to `app`."""
    app.command("fake-server")(fake_server)


def fake_server(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")] = 8000,
    rpm: Annotated[
        int | None, typer.Option("--rpm", help="Requests per minute (default: unlimited).")
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option("--tpm", help="Tokens per minute, prompt + max_tokens reserved (default: unlimited)."),
    ] = None,
    window: Annotated[
        float, typer.Option("--window", help="Seconds over which the per-minute limits are enforced.")
    ] = 2.0,
    refund_unused: Annotated[
        bool,
        typer.Option(
            "--refund-unused/--no-refund-unused",
            help="Give back the unused part of max_tokens when an answer ends (default: keep it, as OpenAI).",
        ),
    ] = False,
    rate_headers: Annotated[
        bool,
        typer.Option(
            "--rate-headers/--no-rate-headers",
            help="Send rate-limit headers (--no-rate-headers: none at all, as vLLM or Ollama).",
        ),
    ] = True,
    latency: Annotated[
        float, typer.Option("--latency", help="Base latency of every answer, seconds.")
    ] = 0.05,
    per_token: Annotated[
        float, typer.Option("--per-token", help="Extra latency per output token, seconds.")
    ] = 0.0,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", help="Share of admitted requests that get a fault (0-1).")
    ] = 0.0,
    faults: Annotated[
        str,
        typer.Option("--faults", help=f"Comma list of the faults to spread the rate over: {_ALL_FAULTS}."),
    ] = _ALL_FAULTS,
    hang: Annotated[
        float, typer.Option("--hang", help="Seconds a 'hang' fault keeps a request open.")
    ] = 600.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fault and latency draws.")] = 0,
    log: Annotated[
        Path | None, typer.Option("--log", help="Append one JSON line per request to this file.")
    ] = None,
    replies: Annotated[
        Path | None,
        typer.Option("--replies", help='JSON list of scripted replies: [{"match", "reply", "times"?}].'),
    ] = None,
    capacity: Annotated[
        int | None,
        typer.Option("--capacity", help="Requests in flight past which latency grows in proportion."),
    ] = None,
    outage_after: Annotated[
        float | None,
        typer.Option("--outage-after", help="Start an outage this many seconds after the first request."),
    ] = None,
    outage_for: Annotated[float, typer.Option("--outage-for", help="Seconds the outage lasts.")] = 30.0,
    outage_mode: Annotated[
        str, typer.Option("--outage-mode", help="What requests get during the outage: 503 or drop.")
    ] = "503",
    batch_delay: Annotated[
        float, typer.Option("--batch-delay", help="Seconds until a submitted batch has ended.")
    ] = 0.0,
    batch_error_match: Annotated[
        list[str] | None,
        typer.Option(
            "--batch-error-match",
            metavar="TEXT",
            help="Batch requests whose prompt has this text fail (once).",
        ),
    ] = None,
    batch_expire_match: Annotated[
        list[str] | None,
        typer.Option(
            "--batch-expire-match",
            metavar="TEXT",
            help="Batch requests whose prompt has this text expire (once).",
        ),
    ] = None,
    batch_account_error: Annotated[
        str | None,
        typer.Option("--batch-account-error", help="Every batch request fails with this error code."),
    ] = None,
) -> None:
    """Serve fake OpenAI (/v1/chat/completions) and Anthropic (/v1/messages) endpoints until Ctrl-C."""
    settings = FakeSettings(
        limits=_limits(rpm, tpm, window, refund_unused),
        faults=_faults(fault_rate, faults),
        latency_s=_at_least_zero(latency, "--latency"),
        per_token_s=_at_least_zero(per_token, "--per-token"),
        hang_s=_at_least_zero(hang, "--hang"),
        seed=seed,
        replies=_load_replies(replies) if replies is not None else (),
        rate_headers=rate_headers,
        **_capacity_and_outage(capacity, outage_after, outage_for, outage_mode),
        batch=FakeBatchSettings(
            delay_s=_at_least_zero(batch_delay, "--batch-delay"),
            error_match=tuple(batch_error_match or ()),
            expire_match=tuple(batch_expire_match or ()),
            account_error=batch_account_error,
        ),
    )
    if not 0 <= port <= 65535:
        raise typer.BadParameter(f"{port} is not a port number (0-65535)", param_hint="--port")
    if log is not None and not log.parent.is_dir():
        raise typer.BadParameter(f"folder {log.parent} does not exist", param_hint="--log")

    def announce(url: str) -> None:
        typer.echo(f"shoal fake-server: OpenAI base URL {url}/v1  Anthropic base URL {url}  (Ctrl-C to stop)")

    try:
        asyncio.run(serve(settings, host, port, log, on_ready=announce))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        typer.echo(f"shoal fake-server: cannot listen on {host}:{port}: {error.strerror or error}", err=True)
        raise typer.Exit(1) from None


async def serve(
    settings: FakeSettings,
    host: str,
    port: int,
    log_path: Path | None,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """`shoal.fake.serve`, imported here so that the HTTP server loads only for this command."""
    from ..fake import serve as serve_http

    await serve_http(settings, host, port, log_path, on_ready=on_ready)


def _limits(rpm: int | None, tpm: int | None, window: float, refund_unused: bool = False) -> FakeLimits:
    if rpm is not None and rpm < 1:
        raise typer.BadParameter(f"must be a positive integer, got {rpm}", param_hint="--rpm")
    if tpm is not None and tpm < 1:
        raise typer.BadParameter(f"must be a positive integer, got {tpm}", param_hint="--tpm")
    if not window > 0:
        raise typer.BadParameter(f"must be positive, got {window}", param_hint="--window")
    return FakeLimits(rpm=rpm, tpm=tpm, window_s=window, refund_unused=refund_unused)


def _faults(rate: float, kinds: str) -> FaultRates:
    if not 0.0 <= rate <= 1.0:
        raise typer.BadParameter(f"must be between 0 and 1, got {rate}", param_hint="--fault-rate")
    names = [name.strip() for name in kinds.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter(f"name at least one of {_ALL_FAULTS}", param_hint="--faults")
    try:
        return FaultRates.spread(rate, names)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--faults") from None


def _capacity_and_outage(
    capacity: int | None, outage_after: float | None, outage_for: float, outage_mode: str
) -> dict[str, Any]:
    if capacity is not None and capacity < 1:
        raise typer.BadParameter(f"must be a positive integer, got {capacity}", param_hint="--capacity")
    if outage_mode not in ("503", "drop"):
        raise typer.BadParameter(f"must be 503 or drop, got {outage_mode!r}", param_hint="--outage-mode")
    return {
        "capacity": capacity,
        "outage_after_s": None if outage_after is None else _at_least_zero(outage_after, "--outage-after"),
        "outage_for_s": _at_least_zero(outage_for, "--outage-for"),
        "outage_mode": outage_mode,
    }


def _at_least_zero(value: float, option: str) -> float:
    if not value >= 0:
        raise typer.BadParameter(f"must not be negative, got {value}", param_hint=option)
    return value


def _load_replies(path: Path) -> tuple[FakeReply, ...]:
    try:
        replies = read_replies(path)
    except RepliesFileError as error:
        raise typer.BadParameter(str(error), param_hint="--replies") from None
    for number, reply in enumerate(replies, 1):
        if reply.call is not None:
            # Tool calls are scripted for agents on the in-process rehearsal provider only; the
            # server's wire formats carry text answers.
            raise typer.BadParameter(
                f'{path}: entry {number}: "call" is for the rehearsal provider; the fake server answers text',
                param_hint="--replies",
            )
    return replies
