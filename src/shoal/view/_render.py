"""Turning a status (from `read_status`) into what a person reads: a Rich panel for terminals and
`shoal status`, or one compact line for logs."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ._batches import batch_lines
from ._format import count, duration, money, percent
from ._model_rows import ModelRows

__all__ = ["compact_line", "render_status", "reservation_notes"]

_STATE_STYLE = {
    "running": "bold green",
    "done": "bold",
    "failed": "bold red",
    "stopped": "bold yellow",
    "interrupted": "bold yellow",
}
_ITEM_COLUMNS = (
    ("pending", "pending"),
    ("running", "running"),
    ("done", "done"),
    ("needs_review", "flagged"),
    ("failed", "failed"),
)


def _limit_cell(usage: dict[str, Any] | None, budget: dict[str, Any] | None, kind: str) -> str:
    if budget is None:
        return "-"
    limit = (budget.get("limits") or {}).get(kind)
    if limit is None:
        return "-"
    used = ((usage or {}).get("per_minute") or {}).get(kind, 0.0)
    pct = ((usage or {}).get("percent") or {}).get(kind)
    learned = " (learning)" if budget.get("learning") else ""
    return f"{count(used)}/{count(limit)} {percent(pct)}{learned}"


def _header(status: dict[str, Any]) -> Text:
    run = status["run"]
    state = run["state"] if not run.get("stopping") else f"{run['state']}, {run['stopping']}"
    text = Text()
    text.append(f"{status['job']}", style="bold")
    text.append(f"  run {run['id']}")
    if run["runs"] > 1:
        text.append(f" (of {run['runs']})")
    text.append("  ")
    text.append(state, style=_STATE_STYLE.get(run["state"], "bold magenta"))
    text.append(f"  {duration(run['elapsed_s'])}")
    return text


def _stages_table(status: dict[str, Any]) -> Table:
    stages = status["stages"]
    with_phase = any(stage["phase"] for stage in stages)
    table = Table(box=None, pad_edge=False, header_style="bold")
    if with_phase:
        table.add_column("phase")
    table.add_column("stage")
    for _, label in _ITEM_COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("calls", justify="right")
    table.add_column("cost", justify="right")
    rows = [*stages]
    if len(stages) > 1:
        rows.append({"name": "all", "phase": "", **status["items"], **status["totals"]["job"]})
    for stage in rows:
        cells = [stage["phase"] or ""] if with_phase else []
        name = stage["name"]
        # With a phase column, "phase-1/lint" reads better as "lint".
        cells.append(name.split("/", 1)[1] if with_phase and "/" in name else name)
        cells += [count(stage[key]) for key, _ in _ITEM_COLUMNS]
        cells += [count(stage["calls"]), money(stage["cost_usd"])]
        table.add_row(*cells)
    return table


def _budget_table(status: dict[str, Any]) -> ModelRows:
    """While the job runs: each model's use of its rate limits, 429s, retries, backoff and pause."""
    rows: list[tuple[str, list[str]]] = []
    for model in status["models"]:
        budget, usage = model["budget"], model["usage"]
        token_kind = "itpm" if budget is not None and "itpm" in (budget.get("limits") or {}) else "tpm"
        tokens = _limit_cell(usage, budget, token_kind)
        if token_kind == "itpm":
            tokens = f"in {tokens}, out {_limit_cell(usage, budget, 'otpm')}"
        factor = "-" if budget is None else percent(100.0 * float(budget.get("factor", 1.0)))
        paused = "-" if budget is None or not budget.get("paused_for_s") else duration(budget["paused_for_s"])
        run = model["run"]
        cells = [
            _limit_cell(usage, budget, "rpm"),
            tokens,
            count(run["rate_limited"]),
            count(run["retries"]),
            factor,
            paused,
        ]
        rows.append((model["model"], cells))
    headers = ("RPM used/limit", "TPM used/limit", "429s", "retries", "rate", "paused")
    note = "; ".join(["this run; rate: share of the limits in use after 429s", *shared_notes(status)])
    return ModelRows(headers, rows, note)


def shared_notes(status: dict[str, Any]) -> list[str]:
    """Budgets shared through Redis: by how many processes now, and this one's share of the limit."""
    notes = []
    for model in status.get("models") or []:
        shared = (model.get("budget") or {}).get("shared")
        if not shared:
            continue
        text = f"{model['model']} budget shared by {shared.get('processes', 1)} processes"
        if shared.get("share_of_limit") is not None:
            text += f", this one {percent(100.0 * float(shared['share_of_limit']))} of the RPM limit"
        notes.append(text)
    return notes


def _models_table(status: dict[str, Any]) -> ModelRows:
    """After the job: calls, 429s, retries, tokens and cost per model, whole job."""
    rows: list[tuple[str, list[str]]] = []
    for model in status["models"]:
        job = model["job"]
        cells = [
            count(job["calls"]),
            count(job["rate_limited"]),
            count(job["retries"]),
            count(job["input_tokens"]),
            count(job["output_tokens"]),
            money(job["cost_usd"]),
        ]
        rows.append((model["model"], cells))
    return ModelRows(("calls", "429s", "retries", "tokens in", "tokens out", "cost"), rows)


def reservation_notes(status: dict[str, Any]) -> list[str]:
    """One line per model whose max_tokens reservation, not the provider, holds throughput back."""
    notes: list[str] = []
    for model in status["models"]:
        check = model.get("reservation")
        if not check or not check["limiting"]:
            continue
        kind = check["limiting"][0]
        reserved, used = percent(check["reserved_percent"][kind]), percent(check["used_percent"][kind])
        notes.append(
            f"{model['model']}: max_tokens {count(check['max_tokens'])}, not the provider, limits "
            f"throughput: reservations fill {reserved} of {kind.upper()}, answers use {used}; the longest "
            f"answers so far ({count(check['output_max'])} tokens) suggest max_tokens "
            f"{count(check['suggested_max_tokens'])}"
        )
    return notes


def _ceiling(workers: dict[str, Any]) -> str:
    """The concurrency limit now; under `auto`, the one it has found (the maximum is the ceiling)."""
    if workers.get("auto"):
        return f"{workers.get('limit', workers['ceiling'])} (auto, max {workers['ceiling']})"
    return str(workers["ceiling"])


def _footer(status: dict[str, Any]) -> list[Text]:
    job, run = status["totals"]["job"], status["totals"]["run"]
    cost, progress, workers = status["cost"], status["progress"], status["workers"]
    lines: list[Text] = [Text(note, style="yellow") for note in reservation_notes(status)]
    if workers is not None:
        lines.append(
            Text(
                f"workers {workers['in_flight']}/{_ceiling(workers)} in flight, {workers['waiting']} waiting"
                f"   sent {count(workers['sent'])}, replayed {count(workers['replayed'])}"
                f"   429s {count(run['rate_limited'])}, retries {count(run['retries'])}"
            )
        )
    for worker in status.get("cluster") or []:
        unit = worker.get("unit", "requests")
        lost = f", lost (its {unit} went to another worker)" if worker.get("lost") else ""
        lines.append(
            Text(
                f"ray worker on node {worker['node']}: {count(worker['done'])} {unit} done, "
                f"{worker['running']} running, {duration(worker['busy_s'])} busy{lost}"
            )
        )
    outages = status.get("outages") or {}
    for provider, down_for in (outages.get("down") or {}).items():
        lines.append(
            Text(f"{provider} answers nothing for {duration(down_for)}: waiting, probing", style="yellow")
        )
    if outages.get("job"):
        lines.append(Text(f"provider outages ridden out: {outages['run']} this run, {outages['job']} job"))
    lines.append(
        Text(
            f"tokens {count(job['input_tokens'])} in / {count(job['output_tokens'])} out / "
            f"{count(job['cached_tokens'])} cached"
        )
    )
    spent = f"cost {money(cost['spent_usd'])} (this run {money(cost['run_usd'])})"
    if cost["projected_usd"] is not None and progress["remaining"]:
        spent += f", projected {money(cost['projected_usd'])}"
    if cost["max_usd"] is not None:
        spent += f", limit {money(cost['max_usd'])}"
    if cost["unpriced"]:
        spent += f" (no price for {', '.join(cost['unpriced'])})"
    lines.append(Text(spent))
    if status.get("gate"):
        lines.append(Text(status["gate"]["line"]))
    lines += [Text(line) for line in batch_lines(status)]
    if status["run"]["state"] == "running":
        rate = progress["per_minute"]
        lines.append(
            Text(
                f"{count(progress['finished'])} finished, {count(progress['remaining'])} to go"
                f"{'' if rate is None else f' at {rate:.1f}/min'}, ETA {duration(progress['eta_s'])}"
            )
        )
    elif status["run"]["state"] == "interrupted":
        lines.append(
            Text(
                "interrupted: the job's process is gone; run the same command again to resume", style="yellow"
            )
        )
    return lines


def _time_line(status: dict[str, Any]) -> list[Text]:
    """Where time went, per call of each stage: the model's answer against the wait for a worker
    slot and the rate budget (profile before you parallelize)."""
    shown = [
        f"{stage['name']} {stage['model_s'] / stage['calls']:.2f}s + {stage['queue_s'] / stage['calls']:.2f}s"
        for stage in status["stages"]
        if stage.get("calls") and "model_s" in stage
    ]
    return [Text("per call, model + queue wait: " + ", ".join(shown), style="dim")] if shown else []


def render_status(status: dict[str, Any]) -> RenderableType:
    """A panel with phases and stages, workers, budget use, tokens, cost and ETA."""
    if status.get("job") is None:
        return Text(status.get("note") or "nothing to show")
    parts: list[RenderableType] = [_stages_table(status), *_time_line(status)]
    if status["models"]:
        live = status["run"]["state"] == "running"
        parts += [Text(""), _budget_table(status) if live else _models_table(status)]
    parts += [Text(""), *_footer(status)]
    return Panel(Group(*parts), title=_header(status), title_align="left", expand=False)


def compact_line(status: dict[str, Any]) -> str:
    """One log line: items, workers, budget use, 429s and retries, tokens, cost, ETA."""
    if status.get("job") is None:
        return f"shoal: {status.get('note') or 'no job'}"
    items, run = status["items"], status["totals"]["run"]
    job, cost, workers = status["totals"]["job"], status["cost"], status["workers"]
    parts = [
        f"shoal: {items['done']}/{items['total']} done, {items['needs_review']} flagged, "
        f"{items['failed']} failed"
    ]
    if workers is not None:
        parts.append(f"{workers['in_flight']}/{_ceiling(workers)} in flight")
    cluster = status.get("cluster") or []
    if cluster:
        running = sum(int(w["running"]) for w in cluster)
        parts.append(f"ray {len(cluster)} workers, {running} running")
    for model in status["models"]:
        pcts = (model["usage"] or {}).get("percent") or {}
        if pcts:
            use = " ".join(f"{kind} {percent(value)}" for kind, value in pcts.items())
            parts.append(f"{model['model']} {use}")
    parts.extend(reservation_notes(status))
    if status.get("batches"):
        parts.append(f"{len(status['batches'])} open batch(es)")
    parts.extend(shared_notes(status))
    parts.append(f"429s {run['rate_limited']}, retries {run['retries']}")
    parts.append(
        f"tokens {count(job['input_tokens'])} in / {count(job['output_tokens'])} out / "
        f"{count(job['cached_tokens'])} cached"
    )
    spent = money(cost["spent_usd"])
    if cost["projected_usd"] is not None and status["progress"]["remaining"]:
        spent += f", projected {money(cost['projected_usd'])}"
    parts.append(spent)
    parts.append(f"ETA {duration(status['progress']['eta_s'])}")
    return " | ".join(parts)
