"""Which Ray worker gets the next request or agent, when one was lost and its replacement is starting.

A replacement's process can take seconds to start on a busy node. Work sent to it meanwhile waits,
and a request's timeout runs while it waits: on a loaded machine the request timed out and went out
a second time. So a replacement gets work only once it answers, unless no other worker is left.
"""

from __future__ import annotations

import asyncio

import pytest

from shoal.cluster._stats import WorkerStat, least_busy


def test_a_replacement_still_starting_gets_no_work_while_another_worker_runs() -> None:
    stats = [WorkerStat("job-0-3", starting=True), WorkerStat("job-1-2", done=138, running=6)]
    assert least_busy(stats) == 1


def test_a_starting_replacement_gets_the_work_when_no_other_worker_is_left() -> None:
    assert least_busy([WorkerStat("job-0-3", starting=True)]) == 0


def test_among_running_workers_the_least_busy_one_is_picked_and_lost_ones_never() -> None:
    stats = [
        WorkerStat("job-0-1", lost=True),
        WorkerStat("job-1-2", done=10, running=3),
        WorkerStat("job-2-4", done=40, running=1),
        WorkerStat("job-0-3", starting=True),
    ]
    assert least_busy(stats) == 2


class StartingActor:
    """What `Replacements` asks of an actor: `node.remote()`, answered once its process is up."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.up = asyncio.Event()
        self.fail = fail
        self.node = self

    async def _node(self) -> str:
        await self.up.wait()
        if self.fail is not None:
            raise self.fail
        return "b79af618f5be0123456789"

    def remote(self) -> asyncio.Task[str]:
        return asyncio.ensure_future(self._node())


async def settled(stat: WorkerStat) -> None:
    while stat.starting:
        await asyncio.sleep(0.01)


async def test_a_replacement_is_marked_starting_until_it_first_answers() -> None:
    pytest.importorskip("ray")
    from shoal.cluster._pool import Replacements

    replacements, actor, stat = Replacements(), StartingActor(), WorkerStat("job-0-3")
    replacements.watch(actor, stat)
    await asyncio.sleep(0.05)
    assert stat.starting and stat.node == "?"
    actor.up.set()
    await settled(stat)
    assert stat.node == "b79af618f5be"


async def test_a_replacement_that_dies_starting_is_no_longer_kept_aside() -> None:
    pytest.importorskip("ray")
    from ray.exceptions import RayActorError

    from shoal.cluster._pool import Replacements

    # The first work sent to it then finds it dead and replaces it, as for any lost worker.
    replacements, actor, stat = Replacements(), StartingActor(fail=RayActorError()), WorkerStat("job-0-3")
    replacements.watch(actor, stat)
    actor.up.set()
    await settled(stat)
    assert stat.node == "?" and not stat.lost
