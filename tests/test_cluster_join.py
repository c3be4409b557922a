"""Joining a Ray cluster: a Ray Client server that fails to start a driver's server is tried again."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.cluster._connect import _join, _one_line

SERVER_FAILED = "Initialization failure from server:\nTraceback (most recent call last):\nRuntimeError: no"


class FlakyInit:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if len(self.calls) <= self.failures:
            raise ConnectionAbortedError(SERVER_FAILED)


def test_a_ray_client_server_that_failed_to_start_is_tried_again() -> None:
    init, pauses = FlakyInit(failures=2), []
    _join(init, "ray://head:10001", {"namespace": "shoal"}, sleep=pauses.append)
    assert init.calls == [{"address": "ray://head:10001", "namespace": "shoal"}] * 3
    assert pauses == [1.0, 2.0]


def test_three_failed_starts_give_up_with_the_servers_error() -> None:
    init, pauses = FlakyInit(failures=5), []
    with pytest.raises(ConnectionAbortedError):
        _join(init, "ray://head:10001", {}, sleep=pauses.append)
    assert len(init.calls) == 3


def test_a_plain_cluster_address_is_not_retried() -> None:
    init = FlakyInit(failures=1)
    with pytest.raises(ConnectionAbortedError):
        _join(init, "10.0.0.5:6379", {}, sleep=lambda _: None)
    assert len(init.calls) == 1


def test_a_servers_traceback_becomes_one_line() -> None:
    one_line = "Initialization failure from server: RuntimeError: no"
    assert _one_line(ConnectionAbortedError(SERVER_FAILED)) == one_line
    assert _one_line(ConnectionError("refused")) == "refused"
    assert _one_line(RuntimeError("")) == "RuntimeError"
