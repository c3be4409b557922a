"""The outage gate: whose failure a transient error is, and the job-wide pause with one probe at a time."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from shoal.engine._outage import OutageGate, OutageSettings, OutageTooLong, Verdict

from clocks import VirtualClock

SETTINGS = OutageSettings(
    failures_to_open=3, min_samples=4, probe_base_s=1.0, probe_max_s=4.0, max_outage_s=60.0
)


def gate_with(events: list[tuple[str, dict[str, Any]]], clock: VirtualClock) -> OutageGate:
    return OutageGate(
        "openai",
        settings=SETTINGS,
        clock=clock,
        rng=random.Random(1),
        on_event=lambda kind, detail: events.append((kind, detail)),
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def answer_many(gate: OutageGate, count: int, prefix: str = "ok") -> None:
    for index in range(count):
        gate.answered(gate.ticket(f"{prefix}-{index}"))


async def test_failures_in_a_row_close_the_gate_and_one_probe_at_a_time_reopens_it() -> None:
    clock, events = VirtualClock(), []
    gate = gate_with(events, clock)
    verdicts = [gate.failed(gate.ticket(f"call-{i}"), "Connection error.") for i in range(3)]
    assert verdicts[-1] is Verdict.OUTAGE and gate.down
    assert [kind for kind, _ in events] == ["outage_start"]
    assert events[0][1]["provider"] == "openai" and events[0][1]["failures_in_a_row"] == 3

    waiting = [asyncio.create_task(gate.admit(f"item-{i}")) for i in range(5)]
    await settle()
    admitted = [task for task in waiting if task.done()]
    assert len(admitted) == 1 and admitted[0].result().probe  # exactly one probe goes out
    probe = admitted[0].result()
    assert gate.failed(probe, "Connection error.") is Verdict.OUTAGE  # still down: the next probe later
    await settle()
    admitted = [task for task in waiting if task.done()]
    assert len(admitted) == 2 and all(task.result().probe for task in admitted)
    second = next(task.result() for task in admitted if task.result() is not probe)
    gate.answered(second)  # the provider answered: everyone goes
    await settle()
    assert all(task.done() for task in waiting) and not gate.down
    assert [kind for kind, _ in events] == ["outage_start", "outage_end"]
    assert events[1][1]["probes"] == 2 and events[1][1]["duration_s"] > 0
    assert sum(task.result().probe for task in waiting) == 2


async def test_a_failure_counts_against_the_call_only_while_the_provider_answers_others() -> None:
    clock, events = VirtualClock(), []
    gate = gate_with(events, clock)
    # Nothing known about the provider yet: the failure is not held against the call.
    assert gate.failed(gate.ticket("early"), "HTTP 500") is Verdict.FLAKY
    answer_many(gate, 30)  # one failure in 31: healthy
    for _ in range(3):  # the same call failing again and again while others are answered
        ticket = gate.ticket("poison")
        answer_many(gate, 2, prefix="other")
        assert gate.failed(ticket, "HTTP 500") is Verdict.CALL  # its own failures are not evidence
    # No other answer while the call was out: cannot tell whose failure it is.
    assert gate.failed(gate.ticket("lonely"), "HTTP 500") is Verdict.FLAKY
    assert not gate.down and events == []


async def test_a_provider_failing_many_calls_is_flaky_not_the_calls_fault() -> None:
    clock, events = VirtualClock(), []
    gate = gate_with(events, clock)
    for index in range(12):  # one in three fails
        ticket = gate.ticket(f"c{index}")
        if index % 3 == 0:
            gate.failed(ticket, "HTTP 503")
        else:
            gate.answered(ticket)
    ticket = gate.ticket("next")
    gate.answered(gate.ticket("meanwhile"))
    assert gate.failed(ticket, "HTTP 503") is Verdict.FLAKY
    assert not gate.down


async def test_an_outage_longer_than_the_limit_raises() -> None:
    clock, events = VirtualClock(), []
    gate = gate_with(events, clock)
    for index in range(3):
        gate.failed(gate.ticket(f"c{index}"), "Connection error.")
    with pytest.raises(OutageTooLong, match="answered nothing"):
        while True:  # every probe fails; the gate gives up after max_outage_s
            ticket = await gate.admit("item")
            assert ticket.probe
            gate.failed(ticket, "Connection error.")
    assert clock.t - 1000.0 > SETTINGS.max_outage_s


async def test_an_abandoned_probe_lets_another_caller_probe() -> None:
    clock, events = VirtualClock(), []
    gate = gate_with(events, clock)
    for index in range(3):
        gate.failed(gate.ticket(f"c{index}"), "Connection error.")
    first = await gate.admit("a")
    waiter = asyncio.create_task(gate.admit("b"))
    await settle()
    assert first.probe and not waiter.done()
    gate.abandon(first)  # stopped before sending
    await settle()
    assert waiter.done() and waiter.result().probe


async def test_requests_that_hung_while_others_were_answered_do_not_open_an_outage() -> None:
    clock, events = VirtualClock(), []
    gate = gate_with(events, clock)
    answer_many(gate, 30)
    hung = [gate.ticket(f"hung-{i}") for i in range(6)]  # all sent, then others were answered
    answer_many(gate, 3, prefix="meanwhile")
    # The job's tail: only the hung ones are left, and they time out one after another.
    verdicts = [gate.failed(ticket, "no answer within 10s") for ticket in hung]
    assert Verdict.OUTAGE not in verdicts and verdicts[-1] is Verdict.FLAKY  # six hangs: not healthy
    assert not gate.down and events == []
