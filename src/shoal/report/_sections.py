"""The report's sections besides throughput: overview, where time went, tokens per item, cost,
outcomes, and the items left for review."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ..view import RunRow, count, duration, money, phase_of
from ._batch import batch_saving
from ._data import CallRow, ReportData
from ._model import Chart, Section, Table
from ._svg import PALETTE, Bar, Series, bar_chart, line_chart, stacked_bar_chart
from ._throughput import Timeline

__all__ = [
    "cost_section",
    "outcomes_section",
    "overview_section",
    "review_section",
    "time_section",
    "tokens_section",
]

_MAX_ROWS = 1000
_MAX_POINTS = 2000
_ITEM_STATES = (
    ("done", "done"),
    ("needs_review", "needs review"),
    ("failed", "failed"),
    ("pending", "pending"),
)


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else duration(value)


def _when(wall: float | None) -> str:
    return "-" if wall is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))


def overview_section(data: ReportData) -> Section:
    status = data.status
    items, job, run = status["items"], status["totals"]["job"], status["run"]
    section = Section("Overview")
    section.paragraphs.append(
        f"Job `{data.job}`: {run['state']} after {len(data.runs)} run(s). {count(items['total'])} items: "
        f"{count(items['done'])} done, {count(items['needs_review'])} flagged for review, "
        f"{count(items['failed'])} failed, {count(items['pending'] + items['running'])} not finished."
    )
    if run["state"] == "running":
        section.paragraphs.append("The job is still running: the figures below are those so far.")
    timeline = Timeline.of(data.runs, data.calls)
    live = run["id"] if run["state"] == "running" else None

    def shown(r: RunRow) -> tuple[str, str]:
        """A run left "running" whose process is gone ended when its last call did: interrupted."""
        if r.status == "running" and r.id != live:
            return "interrupted", duration(timeline.lengths.get(r.id, 0.0))
        return r.status, duration((r.finished_at or data.generated_at) - r.started_at)

    section.tables.append(
        Table(
            ["run", "status", "started", "finished", "duration", "command"],
            [
                [str(r.id), *shown(r)[:1], _when(r.started_at), _when(r.finished_at), shown(r)[1], r.command]
                for r in data.runs
            ],
            numeric=frozenset({0}),
        )
    )
    section.tables.append(
        Table(
            ["calls", "ok", "429s", "other errors", "retries", "tokens in", "tokens out", "cached", "cost"],
            [
                [
                    count(job["calls"]),
                    count(job["ok"]),
                    count(job["rate_limited"]),
                    count(job["errors"]),
                    count(job["retries"]),
                    count(job["input_tokens"]),
                    count(job["output_tokens"]),
                    count(job["cached_tokens"]),
                    money(job["cost_usd"]),
                ]
            ],
            numeric=frozenset(range(9)),
        )
    )
    return section


def time_section(data: ReportData) -> Section:
    section = Section("Where the time went")
    queue: dict[str, float] = defaultdict(float)
    model: dict[str, float] = defaultdict(float)
    calls: dict[str, list[float]] = defaultdict(list)
    for call in data.calls:
        queue[call.stage] += call.queue_s
        model[call.stage] += call.latency_s
        calls[call.stage].append(call.latency_s)
    checks: dict[str, float] = defaultdict(float)
    for event in data.events:
        if event.kind == "check" and isinstance(event.detail.get("duration_s"), int | float):
            checks[str(event.detail.get("stage", ""))] += float(event.detail["duration_s"])
    stages = [s["name"] for s in data.status["stages"] if s["name"] in calls or s["name"] in checks]
    section.paragraphs.append(
        "Queue wait: time calls spent waiting for a worker slot and the rate budget. Model time: from "
        "sending a request to its checked answer. Checks: time recorded by jobs as `check` events "
        "(review and verification steps); none when the job records none."
    )
    section.paragraphs.extend(_shared_lines(data))
    if not stages:
        section.paragraphs.append("No call was recorded for this job.")
        return section
    bars = [
        Bar(s, [queue[s], model[s], checks.get(s, 0.0)], _seconds(queue[s] + model[s] + checks.get(s, 0.0)))
        for s in stages
    ]
    svg = stacked_bar_chart(bars, keys=["queue wait", "model time", "checks"], title="Seconds per stage")
    section.charts.append(Chart("time-per-stage", "Seconds per stage", svg))
    rows = []
    for s in stages:
        latencies = sorted(calls[s])
        n = len(latencies)
        p95 = latencies[min(n - 1, int(0.95 * n))] if n else 0.0
        rows.append(
            [
                s,
                count(n),
                _seconds(queue[s]),
                _seconds(model[s]),
                _seconds(checks[s]) if s in checks else "-",
                f"{queue[s] / n:.2f}s" if n else "-",
                f"{model[s] / n:.2f}s" if n else "-",
                f"{p95:.2f}s",
            ]
        )
    headers = [
        "stage",
        "calls",
        "queue wait",
        "model time",
        "checks",
        "queue/call",
        "model/call",
        "model p95",
    ]
    section.tables.append(Table(headers, rows, numeric=frozenset(range(1, 8))))
    return section


def _shared_lines(data: ReportData) -> list[str]:
    """Budgets shared through Redis with other processes: how many, and this process's share."""
    lines = []
    for model, shared in sorted(data.shared.items()):
        most = shared.get("processes_max", 1)
        text = f"Rate budget of {model} shared through Redis by up to {most} processes"
        if shared.get("share_of_limit") is not None:
            text += f"; this process used {100 * float(shared['share_of_limit']):.0f}% of its RPM limit"
        if shared.get("share") is not None:
            text += f" ({100 * float(shared['share']):.0f}% of the requests granted on it meanwhile)"
        lines.append(text + ".")
    return lines


def _per_item(data: ReportData) -> list[tuple[int, str, int, int]]:
    """(index, item, input tokens, output tokens) for every item with calls, in item order."""
    index = {item.id: item.index for item in data.items}
    sums: dict[str, list[int]] = {}
    for call in data.calls:
        entry = sums.setdefault(call.item, [0, 0])
        entry[0] += call.input_tokens
        entry[1] += call.output_tokens
    extra = len(index)
    ordered = []
    for item, (i, o) in sums.items():
        if item not in index:  # a scope that is not an item (a workflow step): after the items
            extra += 1
            index[item] = extra
        ordered.append((index[item], item, i, o))
    return sorted(ordered)


def _downsample(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= _MAX_POINTS:
        return list(points)
    size = -(-len(points) // _MAX_POINTS)
    out = []
    for start in range(0, len(points), size):
        chunk = points[start : start + size]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    return out


def tokens_section(data: ReportData) -> Section:
    section = Section("Tokens per item")
    rows = _per_item(data)
    if not rows:
        section.paragraphs.append("No call was recorded for this job.")
        return section
    inputs = [(float(i), float(t)) for i, _, t, _ in rows]
    outputs = [(float(i), float(t)) for i, _, _, t in rows]
    series = [
        Series("input tokens", _downsample(inputs), PALETTE[0]),
        Series("output tokens", _downsample(outputs), PALETTE[1]),
    ]
    svg = line_chart(series, title="Tokens per item", x_label="item index", y_label="tokens (all attempts)")
    section.charts.append(Chart("tokens-per-item", "Tokens per item", svg))
    tenth = max(1, len(rows) // 10)
    first = sum(t for _, _, t, _ in rows[:tenth]) / tenth
    last = sum(t for _, _, t, _ in rows[-tenth:]) / tenth
    verdict = "flat: no sign of context accumulating" if first and 0.8 <= last / first <= 1.25 else "not flat"
    section.paragraphs.append(
        f"Input tokens per item (every attempt counted): {count(first)} on average over the first tenth of "
        f"the items, {count(last)} over the last tenth ({verdict}). A line that climbs with the item index "
        "means context is carried from item to item."
    )
    heavy = sorted(rows, key=lambda r: r[2] + r[3], reverse=True)[:10]
    section.tables.append(
        Table(
            ["item", "index", "tokens in", "tokens out"],
            [[item, str(i), count(a), count(b)] for i, item, a, b in heavy],
            numeric=frozenset({1, 2, 3}),
            note="the ten items that used the most tokens",
        )
    )
    return section


def _cost_rows(groups: dict[str, list[CallRow]]) -> list[list[str]]:
    rows = []
    for name, calls in sorted(groups.items(), key=lambda kv: -sum(c.cost_usd for c in kv[1])):
        rows.append(
            [
                name,
                count(len(calls)),
                count(sum(c.input_tokens for c in calls)),
                count(sum(c.output_tokens for c in calls)),
                count(sum(c.cached_tokens for c in calls)),
                money(sum(c.cost_usd for c in calls)),
            ]
        )
    return rows


def _estimate_rows(data: ReportData, actual: float) -> list[list[str]]:
    """The journaled estimates ("estimate" before a run, "projection" after a plan's phase), in order."""
    rows = []
    for event in data.events:
        if event.kind not in ("estimate", "projection"):
            continue
        detail = event.detail
        spent = float(detail.get("spent_usd", 0.0))
        expected = spent + float(detail.get("expected_usd", 0.0))
        worst = spent + float(detail.get("worst_usd", 0.0))
        when = (
            f"before run {event.run_id}"
            if event.kind == "estimate"
            else f"after phase {detail.get('after_phase')} (run {event.run_id})"
        )
        ratio = f"{actual / expected:.2f}x" if expected > 0 else "-"
        rows.append([when, money(expected), money(worst), money(actual), ratio])
    return rows


def cost_section(data: ReportData) -> Section:
    section = Section("Cost by model, phase and stage")
    cost = data.status["cost"]
    text = f"{money(cost['spent_usd'])} in all"
    if cost.get("max_usd") is not None:
        text += f", against a budget of {money(cost['max_usd'])}"
    section.paragraphs.append(text + ". Tokens count every attempt, failed ones included.")
    saving = batch_saving(data)
    if saving:
        section.paragraphs.append(saving)
    estimates = _estimate_rows(data, cost["spent_usd"])
    if estimates:
        section.paragraphs.append(
            "Estimate against actual: the expected cost shown before each run and, for plans, "
            "re-projected after each phase from the tokens and escalations seen so far."
        )
        section.tables.append(
            Table(
                ["estimate", "expected", "worst case", "actual", "actual / expected"],
                estimates,
                numeric=frozenset({1, 2, 3, 4}),
            )
        )
    dimensions: list[tuple[str, dict[str, list[CallRow]]]] = [("model", {}), ("phase", {}), ("stage", {})]
    for call in data.calls:
        dimensions[0][1].setdefault(call.model, []).append(call)
        dimensions[1][1].setdefault(phase_of(call.stage) or "(single phase)", []).append(call)
        dimensions[2][1].setdefault(call.stage, []).append(call)
    headers = ["calls", "tokens in", "tokens out", "cached", "cost"]
    for name, groups in dimensions:
        bars = [(label, sum(c.cost_usd for c in calls)) for label, calls in groups.items()]
        bars.sort(key=lambda b: -b[1])
        svg = bar_chart(bars, title=f"Cost by {name} (USD)", value_format=money)
        section.charts.append(Chart(f"cost-by-{name}", f"Cost by {name}", svg))
        section.tables.append(Table([name, *headers], _cost_rows(groups), numeric=frozenset(range(1, 6))))
    return section


def outcomes_section(data: ReportData) -> Section:
    section = Section("Outcomes")
    stages: list[dict[str, Any]] = data.status["stages"]
    bars = [Bar(s["name"], [float(s[key]) for key, _ in _ITEM_STATES], count(s["total"])) for s in stages]
    svg = stacked_bar_chart(
        bars, keys=[label for _, label in _ITEM_STATES], title="Items by outcome, per stage"
    )
    section.charts.append(Chart("outcomes", "Items by outcome", svg))
    section.tables.append(
        Table(
            ["stage", *(label for _, label in _ITEM_STATES), "running", "total"],
            [
                [
                    s["name"],
                    *(count(s[key]) for key, _ in _ITEM_STATES),
                    count(s["running"]),
                    count(s["total"]),
                ]
                for s in stages
            ],
            numeric=frozenset(range(1, 7)),
        )
    )
    outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for call in data.calls:
        outcomes[call.stage][call.outcome] += 1
    kinds = sorted({k for per in outcomes.values() for k in per}, key=lambda k: (k != "ok", k))
    if kinds:
        section.tables.append(
            Table(
                ["stage (calls)", *kinds],
                [[stage, *(count(per.get(k, 0)) for k in kinds)] for stage, per in outcomes.items()],
                numeric=frozenset(range(1, len(kinds) + 1)),
            )
        )
    return section


def review_section(data: ReportData) -> Section:
    section = Section("Left for review, and failed")
    for status, title in (("needs-review", "needs review"), ("failed", "failed")):
        items = [i for i in data.items if i.status == status]
        if not items:
            section.paragraphs.append(f"No item {title}.")
            continue
        note = f"first {_MAX_ROWS} of {len(items)} shown" if len(items) > _MAX_ROWS else ""
        section.tables.append(
            Table(
                ["item", "stage", "status", "reason" if status == "needs-review" else "error", "file"],
                [[i.id, i.stage or "", i.status, i.error or "", i.file or ""] for i in items[:_MAX_ROWS]],
                note=note or f"{len(items)} item(s) {title}",
            )
        )
    return section
