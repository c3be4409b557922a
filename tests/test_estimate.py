"""The cost estimate: expected beside the worst case, re-projected after each phase, and every model
priced before a budgeted job starts."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from shoal.config import Price, ShoalConfig
from shoal.estimate import DEFAULT_OUTPUT_SHARE, Estimate, estimate_map
from shoal.fake import FakeLimits, FakeServer, FakeSettings
from shoal.journal import UsageRow
from shoal.pricing import PriceBook

from helpers import clean_env, invoke_shoal, write_records
from plan_helpers import copy_example

HAIKU = Price(input=1.0, output=5.0)
SONNET = Price(input=3.0, output=15.0)
ALIAS_PRICES = "\n[prices]\nhaiku = { input = 1.0, output = 5.0 }\nsonnet = { input = 3.0, output = 15.0 }\n"


def journal(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("shoal: error: "), stderr
    return lines[0]


def test_the_projection_after_phase_1_is_within_15_percent_of_what_the_example_plan_spends(
    workspace: Path,
) -> None:
    copy_example(workspace)
    toml = (workspace / "shoal.toml").read_text().replace("latency_s = 0.2", "latency_s = 0")
    (workspace / "shoal.toml").write_text(toml + ALIAS_PRICES)
    result = invoke_shoal(workspace, "run", "PLAN.md", "--yes")
    assert result.returncode == 0, result.stderr
    assert re.search(r"Estimate: about \$\d+\.\d+ expected \(.*\), \$\d+\.\d+ at worst", result.stderr)
    assert "plan: cost after phase 1:" in result.stderr

    actual = journal(workspace, "SELECT sum(cost_usd) FROM calls")[0][0]
    # The ledger charged the prices given for the aliases, not the rehearsal provider's own.
    haiku = "SELECT sum(input_tokens), sum(output_tokens), sum(cost_usd) FROM calls WHERE model = ?"
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        tokens_in, tokens_out, cost = conn.execute(haiku, ("rehearsal:haiku",)).fetchone()
    assert cost == pytest.approx((tokens_in * HAIKU.input + tokens_out * HAIKU.output) / 1e6)
    events = {
        kind: json.loads(detail) for kind, detail in journal(workspace, "SELECT kind, detail FROM events")
    }
    launch, projection = events["estimate"], events["projection"]
    assert projection["after_phase"] == 1 and projection["tasks"] == 3
    projected = projection["spent_usd"] + projection["expected_usd"]
    assert abs(projected - actual) <= 0.15 * actual, (projected, actual)
    assert launch["worst_usd"] >= actual >= projection["spent_usd"] > 0

    report = invoke_shoal(workspace, "report", "--out-dir", "rep")
    assert report.returncode == 0, report.stderr
    markdown = (workspace / "rep" / "report.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith(("| before run 1", "| after phase 1"))]
    assert len(rows) == 2, markdown


def test_prices_given_for_an_alias_price_the_launch_estimate(workspace: Path) -> None:
    copy_example(workspace)
    (workspace / "shoal.toml").write_text(
        (workspace / "shoal.toml")
        .read_text()
        .replace('haiku = "rehearsal:haiku"', 'haiku = "openai:my-local-llm"')
        .replace("[job]", '[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\n\n[job]')
        + ALIAS_PRICES
    )
    result = invoke_shoal(workspace, "run", "PLAN.md")  # no --yes: stops at the question, sends nothing
    assert "no price known" not in result.stderr
    expected = re.search(r"Estimate: about \$(\d+\.\d+) expected", result.stderr)
    assert expected is not None and float(expected.group(1)) > 0.01, result.stderr


def test_a_plan_with_a_cost_budget_refuses_a_model_without_a_price(workspace: Path) -> None:
    copy_example(workspace)
    (workspace / "shoal.toml").write_text(
        (workspace / "shoal.toml")
        .read_text()
        .replace('haiku = "rehearsal:haiku"', 'haiku = "openai:my-local-llm"')
        .replace("[job]", '[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\n\n[job]')
    )
    result = invoke_shoal(workspace, "run", "PLAN.md", "--yes")
    assert result.returncode == 2
    line = one_line_error(result.stderr)
    assert "no price known for openai:my-local-llm" in line and "[prices]" in line
    assert not (workspace / ".shoal").exists()  # nothing started


def test_map_refuses_a_typod_model_only_when_a_cost_budget_is_set(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 3)
    argv = [
        "map",
        "in.jsonl",
        "--prompt",
        "Explain {topic}.",
        "--model",
        "openai:gpt-4o-mnii",
        "--out",
        "o.jsonl",
    ]
    with FakeServer(FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.0)) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        refused = invoke_shoal(workspace, *argv, "--max-cost", "1", env=env)
        assert refused.returncode == 2
        assert "no price known for openai:gpt-4o-mnii" in one_line_error(refused.stderr)
        assert server.backend.stats["requests"] == 0
        unbudgeted = invoke_shoal(workspace, *argv, env=env)  # no budget: nothing to protect
        assert unbudgeted.returncode == 0, unbudgeted.stderr


def test_a_workflow_with_a_cost_budget_refuses_a_model_without_a_price(workspace: Path) -> None:
    (workspace / "wf.py").write_text(
        "from shoal import agent, workflow\n\n"
        "@workflow(name='priced')\n"
        "async def main() -> str:\n"
        "    return await agent('say hi')\n"
    )
    (workspace / "shoal.toml").write_text('[workflow]\ndefault_model = "openai:no-such-model"\n')
    env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    result = invoke_shoal(workspace, "run", "wf.py", "--yes", "--max-cost", "1", env=env)
    assert result.returncode == 2
    assert "no price known for openai:no-such-model" in one_line_error(result.stderr)


def usage(scope: str, output_tokens: int, outcome: str = "ok") -> UsageRow:
    return UsageRow(scope, "map", "openai:gpt-4o-mini", outcome, 100, output_tokens, 0.0001)


def test_map_estimate_uses_observed_output_lengths_and_skips_answered_records() -> None:
    prices = PriceBook({"openai:m": Price(input=1.0, output=1.0)})
    prompts = [(f"r{i}", "a prompt of some length") for i in range(10)]
    fresh = estimate_map(
        "map:x", prompts, total=10, model_key="openai:m", max_tokens=1000, prices=prices, rows=[]
    )
    assert fresh.worst_usd > fresh.expected_usd > 0
    # Nothing observed: answers at the default share of their budget.
    assert fresh.worst_usd - fresh.expected_usd == pytest.approx(10 * 1000 * (1 - DEFAULT_OUTPUT_SHARE) / 1e6)

    rows = [usage("map:x#r0", 100), usage("map:x#r1", 300, outcome="invalid"), usage("map:x#r1", 300)]
    # The prompts are a sample: sizes come from it, the count of records left from `total`.
    seen = estimate_map(
        "map:x", prompts[:3], total=10, model_key="openai:m", max_tokens=1000, prices=prices, rows=rows
    )
    # 8 records left; 1.5 calls per record observed, each 100 in and about 233 out.
    assert seen.expected_usd == pytest.approx(8 * 1.5 * (100 + 700 / 3) / 1e6)
    assert seen.spent_usd == pytest.approx(0.0003)


def test_the_budget_warning_compares_the_expected_total_with_the_budget() -> None:
    estimate = Estimate(expected_usd=0.05, worst_usd=0.2, basis="test", spent_usd=0.01)
    assert estimate.budget_warning(None) is None
    assert estimate.budget_warning(0.1) is None  # the worst case alone does not warn
    warning = estimate.budget_warning(0.04)
    assert warning is not None and "$0.0600" in warning and "raise --max-cost" in warning


def test_the_price_book_resolves_aliases_in_prices() -> None:
    config = ShoalConfig.model_validate(
        {"models": {"fast": "openai:my-local-llm"}, "prices": {"fast": {"input": 1.0, "output": 2.0}}}
    )
    assert PriceBook.from_config(config).price("openai:my-local-llm") == Price(input=1.0, output=2.0)


async def test_a_plans_own_projection_is_what_status_and_the_live_view_show(tmp_path: Path) -> None:
    from shoal.journal import CallRecord, ItemStatus, Journal
    from shoal.view import read_status

    path = tmp_path / ".shoal" / "journal.db"
    journal = Journal.open(path)
    run_id = await journal.begin_run("plan:p", "shoal run p.md", os.getpid())
    await journal.set_items("plan:p", ["a.md", "b.md", "c.md", "d.md"], ItemStatus.PENDING)
    await journal.set_item("plan:p", "a.md", ItemStatus.DONE, stage="phase-1/ship")
    fields = dict(job="plan:p", run_id=run_id, stage="phase-1/generate", model="openai:m", outcome="ok")
    await journal.record_call(
        CallRecord(
            key="k", scope="plan:p#a.md/writer/haiku", attempt=1, status=200, response="x",
            finish_reason="stop", input_tokens=10, output_tokens=10, cached_tokens=0, cost_usd=0.01,
            latency_s=0.1, queue_s=0.0, error=None, created_at=0.0, **fields,
        )
    )  # fmt: skip
    # Linear: $0.01 for 1 of 4 tasks would project $0.04; the plan's own projection says $0.25.
    snapshot = {"ts": 0.0, "run_id": run_id, "ledger": {"max_cost_usd": None, "projected_usd": 0.25}}
    journal.snapshot(run_id, snapshot)
    await journal.close()
    assert read_status(path)["cost"]["projected_usd"] == 0.25
