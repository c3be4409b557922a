"""`[rehearsal] latency_s`: what the in-process rehearsal provider simulates."""

from __future__ import annotations

from shoal.config import RehearsalSettings, ShoalConfig
from shoal.fake import FakeBackend
from shoal.providers import ProviderSet


def _backend(config: ShoalConfig) -> FakeBackend:
    providers = ProviderSet(config, {})
    return FakeBackend(providers._rehearsal_fake_settings("echo"))


def test_latency_zero_means_no_simulated_latency_at_all() -> None:
    backend = _backend(ShoalConfig(rehearsal=RehearsalSettings(latency_s=0)))
    assert backend._latency(0) == 0.0
    assert backend._latency(4000) == 0.0  # nothing per output token either


def test_a_latency_also_grows_with_the_answer() -> None:
    backend = _backend(ShoalConfig(rehearsal=RehearsalSettings(latency_s=0.15)))
    assert backend._latency(0) >= 0.15 * 0.5  # jitter at most halves it
    assert backend._latency(4000) > backend._latency(0)
