"""Choosing the executor: checking a Ray target before anything starts, connecting, shutting down."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import ShoalConfig
from ..engine import ProviderSource
from ..errors import ConfigError

__all__ = ["RayTarget", "executor_providers", "executor_tools", "ray_target"]

_PROBE_TIMEOUT_S = 5.0
_JOIN_ATTEMPTS = 3
_JOIN_PAUSE_S = 1.0
_LOCAL_OBJECT_STORE = 256 * 1024 * 1024  # items and replies are small; keep /dev/shm free
# Environment a worker's provider adapters read (keys and base URLs); shipped with the actor.
_WORKER_ENV_PREFIXES = ("OPENAI_", "ANTHROPIC_", "SHOAL_")


@dataclass(frozen=True, slots=True)
class RayTarget:
    """Where the Ray executor runs: None starts a local Ray; "auto" or an address joins a cluster."""

    address: str | None
    workers: int | None


_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray names its node 127.0.0.1


def redis_url(config: ShoalConfig, env: Mapping[str, str]) -> str | None:
    """The shared budget's Redis. `[budget] redis_url` arrives with the shared-budget work (issue 12);
    read defensively so this module does not depend on its config class."""
    budget = getattr(config, "budget", None)
    url = getattr(budget, "redis_url", None)
    return str(url) if url else env.get("SHOAL_REDIS_URL") or None


def ray_target(config: ShoalConfig, env: Mapping[str, str]) -> RayTarget | None:
    """Check the executor settings before the job starts; None for the local executor.

    User mistakes (no shared budget, Ray missing, an address nobody answers) are one line, exit 2.
    """
    settings = config.executor
    if settings.kind != "ray":
        return None
    if redis_url(config, env) is None:
        raise ConfigError(
            'executor "ray" needs the shared rate budget: set [budget] redis_url in shoal.toml '
            "(or SHOAL_REDIS_URL), so every worker sends under one budget"
        )
    if settings.address is None:
        # A Ray this command starts serves this machine only: keep its nodes on loopback. Ray reads
        # this when it is imported (else it names the node by the machine's network address).
        os.environ.setdefault(_LOOPBACK_ONLY, "0")
    try:
        importlib.import_module("ray")
    except ImportError:
        raise ConfigError("executor \"ray\" needs Ray: pip install 'shoal[ray]'") from None
    address = settings.address
    if address is not None and address.startswith("ray://"):
        try:
            importlib.import_module("grpc")
        except ImportError:
            raise ConfigError(
                f"[executor] address {address} needs Ray Client: pip install 'ray[client]'"
            ) from None
    if address is not None and address != "auto":
        _probe(address)
    return RayTarget(address, settings.workers)


def _probe(address: str) -> None:
    """A TCP connect first: Ray itself retries an unreachable address for a minute or more."""
    split = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = split.hostname, split.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ConfigError(f"[executor] address '{address}': expected host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _connect(target: RayTarget, state_dir: Path) -> None:
    """ray.init for the target: a local Ray of this machine's CPUs, or a driver of the cluster."""
    import ray

    from ._local import reap_leftovers, record_processes
    from ._pool import NAMESPACE

    common: dict[str, Any] = {
        "namespace": NAMESPACE,
        "log_to_driver": False,
        "logging_level": logging.ERROR,  # Ray's own notices (auth token, start-up) are noise here
    }
    try:
        if target.address is None:
            reap_leftovers(state_dir)
            ray.init(
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=_LOCAL_OBJECT_STORE,
                **common,
            )
            record_processes(state_dir)
        else:
            _join(ray.init, target.address, common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {target.address}: {_one_line(exc)}") from None


def _join(
    init: Callable[..., object],
    address: str,
    options: Mapping[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """ray.init on a cluster. A Ray Client proxy starts one server process per driver, and on a busy
    head that start sometimes fails ("Initialization failure from server"); another try gets a new
    one. Ray disconnects a failed client itself, so init can simply run again."""
    for attempt in range(1, _JOIN_ATTEMPTS + 1):
        try:
            init(address=address, **options)
            return
        except ConnectionAbortedError:
            if attempt == _JOIN_ATTEMPTS or not address.startswith("ray://"):
                raise
            sleep(_JOIN_PAUSE_S * attempt)


def _one_line(exc: BaseException) -> str:
    """Ray's errors can carry a server traceback; a refusal is one line: its first and its last."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(exc).__name__
    return f"{lines[0].rstrip(':')}: {lines[-1]}"


def _worker_env(config: ShoalConfig, env: Mapping[str, str]) -> dict[str, str]:
    named = {p.api_key_env for p in config.providers.values() if p.api_key_env}
    return {k: v for k, v in env.items() if k.startswith(_WORKER_ENV_PREFIXES) or k in named}


@asynccontextmanager
async def _connected(target: RayTarget, state_dir: Path) -> AsyncIterator[None]:
    """This process as a Ray driver for the block (a process already connected stays connected)."""
    import ray

    if ray.is_initialized():  # a program that set Ray up itself (tests, notebooks) keeps it
        yield
        return
    _connect(target, state_dir)
    try:
        yield
    finally:
        ray.shutdown()  # a local Ray started here stops; a cluster only loses this driver
        if target.address is None:
            (state_dir / "ray-local.json").unlink(missing_ok=True)  # nothing left to reap


@asynccontextmanager
async def executor_providers(
    target: RayTarget | None,
    config: ShoalConfig,
    env: Mapping[str, str],
    *,
    job_name: str,
    state_dir: Path,
    local: ProviderSource,
) -> AsyncIterator[ProviderSource]:
    """The providers a job's caller sends through: `local` itself, or Ray workers in front of them."""
    if target is None:
        yield local
        return
    import ray

    from ._pool import RemoteProviders, WorkerPool, job_prefix, kill_leftovers

    async with _connected(target, state_dir):
        prefix = job_prefix(job_name)
        kill_leftovers(prefix)
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        count = target.workers or max(1, int(resources.get("CPU", 1)))
        pool = WorkerPool(config, _worker_env(config, env), prefix=prefix, count=count)
        await pool.start()
        await local.aclose()  # the driver sends nothing itself
        yield RemoteProviders(pool)


@asynccontextmanager
async def executor_tools(
    target: RayTarget | None, *, job_name: str, state_dir: Path, local: ProviderSource
) -> AsyncIterator[ProviderSource]:
    """For workflows: agents' loops (or, for agents with workspace tools, their typed Python tools)
    run on Ray workers; their model requests are answered by the driver."""
    if target is None:
        yield local
        return
    import ray

    from ._pool import job_prefix, kill_leftovers
    from ._tools import RemoteTools

    async with _connected(target, state_dir):
        prefix = job_prefix(job_name)
        kill_leftovers(prefix)
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        count = target.workers or max(1, int(resources.get("CPU", 1)))
        yield RemoteTools(local, prefix=prefix, workers=count)  # the job closes it, loops included
