"""Request timeouts learned from the latency of similar requests."""

from __future__ import annotations

from typing import Any

from shoal.engine._timeouts import AdaptiveTimeouts, TimeoutSettings

SETTINGS = TimeoutSettings(ceiling_s=120.0, floor_s=1.0, percentile=0.95, factor=3.0, min_samples=20)


def test_the_ceiling_applies_until_enough_answers_then_a_multiple_of_their_latency() -> None:
    reported: list[dict[str, Any]] = []
    timeouts = AdaptiveTimeouts(SETTINGS, on_adapted=reported.append)
    for _ in range(19):
        timeouts.observe("openai:m", 1000, 2.0)
    assert timeouts.timeout_for("openai:m", 1000) == 120.0
    timeouts.observe("openai:m", 1000, 2.0)
    assert timeouts.timeout_for("openai:m", 1000) == 6.0
    assert reported == [
        {"model": "openai:m", "max_tokens_group": 1024, "timeout_s": 6.0, "latency_s": 2.0, "samples": 20}
    ]
    # Another size or model has its own latency: it starts at the ceiling.
    assert timeouts.timeout_for("openai:m", 4000) == 120.0
    assert timeouts.timeout_for("openai:other", 1000) == 120.0
    # Requests of the same power-of-two group share it.
    assert timeouts.timeout_for("openai:m", 600) == 6.0


def test_floor_and_percentile() -> None:
    timeouts = AdaptiveTimeouts(SETTINGS)
    for _ in range(40):
        timeouts.observe("m", 100, 0.01)
    assert timeouts.timeout_for("m", 100) == 1.0  # never below the floor
    for _ in range(40):
        timeouts.observe("m", 100, 0.01)
    for _ in range(3):  # a few slow answers among 83 stay under the 95th percentile
        timeouts.observe("m", 100, 30.0)
    assert timeouts.timeout_for("m", 100) == 1.0


def test_a_provider_that_became_slower_stretches_the_timeout_back_to_the_ceiling() -> None:
    timeouts = AdaptiveTimeouts(SETTINGS)
    for _ in range(20):
        timeouts.observe("m", 100, 1.0)
    assert timeouts.timeout_for("m", 100) == 3.0
    for _ in range(5):  # requests that hung while others of the group were answered
        timeouts.timed_out("m", 100, answered_meanwhile=True)
    assert timeouts.timeout_for("m", 100) == 3.0
    timeouts.timed_out("m", 100)  # nothing answered while it was out: wait longer next time
    assert timeouts.timeout_for("m", 100) == 6.0
    timeouts.observe("m", 100, 1.0)  # an answer: back to normal
    assert timeouts.timeout_for("m", 100) == 3.0
    for _ in range(8):  # everything times out now
        timeouts.timed_out("m", 100)
    assert timeouts.timeout_for("m", 100) == 120.0
