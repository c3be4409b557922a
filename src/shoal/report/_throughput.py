"""Throughput over time against the rate limit, per model.

The time axis is the job's running time: its runs laid end to end (a job resumed a day later does
not draw a day of nothing), with the run boundaries named in the text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from ..journal import CallOutcome
from ..view import RunRow, count, duration
from ._data import CallRow, LimitPoint, ReportData
from ._model import Chart, Section, Table
from ._svg import PALETTE, Series, line_chart

__all__ = ["Timeline", "bucket_size", "sustained_rate", "throughput_section"]

_BUCKETS = (2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
_TARGET_BUCKETS = 80
_MINUTE_S = 60.0


@dataclass(frozen=True, slots=True)
class Timeline:
    """Maps (run, wall time) to seconds of job running time."""

    offsets: dict[int, float]
    starts: dict[int, float]
    lengths: dict[int, float]

    @classmethod
    def of(cls, runs: Sequence[RunRow], calls: Sequence[CallRow]) -> Timeline:
        last_call: dict[int, float] = {}
        for call in calls:
            last_call[call.run_id] = max(last_call.get(call.run_id, 0.0), call.created_at)
        offsets, starts, lengths = {}, {}, {}
        offset = 0.0
        for run in runs:
            # An unfinished run (still going, or its process died) ends at its last call.
            end = max(run.finished_at or run.started_at, last_call.get(run.id, run.started_at))
            offsets[run.id], starts[run.id] = offset, run.started_at
            lengths[run.id] = max(0.0, end - run.started_at)
            offset += lengths[run.id]
        return cls(offsets, starts, lengths)

    @property
    def total_s(self) -> float:
        return sum(self.lengths.values())

    def x(self, run_id: int, wall: float) -> float:
        into = min(max(0.0, wall - self.starts.get(run_id, wall)), self.lengths.get(run_id, 0.0))
        return self.offsets.get(run_id, 0.0) + into

    def end_of(self, run_id: int) -> float:
        return self.offsets.get(run_id, 0.0) + self.lengths.get(run_id, 0.0)


def bucket_size(span_s: float) -> float:
    for size in _BUCKETS:
        if span_s / size <= _TARGET_BUCKETS:
            return float(size)
    return float(_BUCKETS[-1])


def _rates(values: dict[int, float], buckets: int, size: float, scale: float) -> list[tuple[float, float]]:
    return [((b + 0.5) * size / scale, values.get(b, 0.0) * 60.0 / size) for b in range(buckets)]


def _limit_steps(
    points: Sequence[LimitPoint], timeline: Timeline, kind: str, scale: float, *, effective: bool
) -> list[tuple[float, float]]:
    steps: list[tuple[float, float]] = []
    by_run: dict[int, list[LimitPoint]] = defaultdict(list)
    for point in points:
        if kind in point.limits:
            by_run[point.run_id].append(point)
    for run_id in sorted(by_run):
        run_points = by_run[run_id]
        for point in run_points:
            value = point.limits[kind] * (point.factor if effective else 1.0)
            steps.append((timeline.x(run_id, point.ts) / scale, value))
        steps.append((timeline.end_of(run_id) / scale, steps[-1][1]))
    return steps


def _model_charts(
    model: str, calls: Sequence[CallRow], limits: Sequence[LimitPoint], timeline: Timeline, index: int
) -> tuple[list[Chart], list[str]]:
    span = max(timeline.total_s, 1.0)
    size = bucket_size(span)
    scale, unit = (60.0, "minutes") if span >= 600 else (1.0, "seconds")
    buckets = int(span // size) + 1
    requests: dict[int, float] = defaultdict(float)
    limited: dict[int, float] = defaultdict(float)
    tokens: dict[int, float] = defaultdict(float)
    for call in calls:
        b = int(timeline.x(call.run_id, call.created_at) // size)
        requests[b] += 1
        tokens[b] += call.input_tokens + call.output_tokens
        if call.outcome == CallOutcome.RATE_LIMITED:
            limited[b] += 1
    x_label = f"job running time ({unit}; {duration(size)} buckets)"
    rpm = [
        Series("requests/min", _rates(requests, buckets, size, scale), PALETTE[0]),
        Series("429s/min", _rates(limited, buckets, size, scale), PALETTE[2]),
    ]
    tpm = [Series("tokens/min (in + out)", _rates(tokens, buckets, size, scale), PALETTE[0])]
    for kind, target in (("rpm", rpm), ("tpm", tpm)):
        steps = _limit_steps(limits, timeline, kind, scale, effective=False)
        if steps:
            target.append(Series(f"{kind.upper()} limit", steps, PALETTE[5], dashed=True, step=True))
        effective = _limit_steps(limits, timeline, kind, scale, effective=True)
        if any(point.factor < 1.0 for point in limits) and effective:
            target.append(Series("after 429 backoff", effective, PALETTE[1], step=True))
    charts = [
        Chart(
            f"throughput-{index}-rpm",
            f"{model}: requests per minute",
            _chart(rpm, model, "requests", x_label),
        ),
        Chart(
            f"throughput-{index}-tpm", f"{model}: tokens per minute", _chart(tpm, model, "tokens", x_label)
        ),
    ]
    sustained, how = sustained_rate([timeline.x(c.run_id, c.created_at) for c in calls], timeline.total_s)
    peak = max((v for _, v in rpm[0].points), default=0.0)
    limit_values = [p.limits["rpm"] for p in limits if "rpm" in p.limits]
    text = f"{model}: {count(sustained)} requests/min sustained ({how})"
    if limit_values:
        limit = limit_values[-1]
        text += f" against an RPM limit of {count(limit)} ({100 * sustained / limit:.0f}%)"
    text += f"; {duration(size)} buckets of the chart reach {count(peak)}/min in short bursts"
    if not any("rpm" in p.limits for p in limits):
        text += "; no limit was recorded for this model (snapshots missing)"
    return charts, [text + "."]


def sustained_rate(times: Sequence[float], span_s: float) -> tuple[float, str]:
    """Requests per minute as a provider's per-minute limit sees them: the busiest 60 s window of
    the job's running time, or the mean over a job shorter than a minute. Never a bucket of a
    few seconds scaled up to a minute, which reads as far above the limit without a single 429."""
    if not times:
        return 0.0, "no requests"
    if span_s < _MINUTE_S:
        return len(times) * _MINUTE_S / max(span_s, 1.0), f"mean over {duration(span_s)}"
    ordered = sorted(times)
    busiest, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= _MINUTE_S - 1e-6:  # one at +60 s opens the next minute
            first += 1
        busiest = max(busiest, last - first + 1)
    return float(busiest), "busiest minute"


def _chart(series: list[Series], model: str, what: str, x_label: str) -> str:
    """The scale fits the traffic and the latest limit; an earlier, far higher limit (configured
    before the provider's headers taught the real one) is drawn at the top."""
    traffic = max((y for s in series if not s.step for _, y in s.points), default=0.0)
    latest = max((s.points[-1][1] for s in series if s.step and s.points), default=0.0)
    cap = 1.3 * max(traffic, latest) or None
    return line_chart(
        series, title=f"{model}: {what} per minute", x_label=x_label, y_label=f"{what} / min", y_max=cap
    )


def throughput_section(data: ReportData) -> Section:
    section = Section("Throughput against the rate limit")
    if not data.calls:
        section.paragraphs.append("No call was recorded for this job.")
        return section
    timeline = Timeline.of(data.runs, data.calls)
    by_model: dict[str, list[CallRow]] = defaultdict(list)
    for call in data.calls:
        by_model[call.model].append(call)
    rows = []
    for index, (model, calls) in enumerate(sorted(by_model.items())):
        limits = [p for p in data.limits if p.model == model]
        charts, text = _model_charts(model, calls, limits, timeline, index)
        section.charts += charts
        section.paragraphs += text
        limited = sum(1 for c in calls if c.outcome == CallOutcome.RATE_LIMITED)
        last = next((p for p in reversed(limits)), None)
        rpm = count(last.limits.get("rpm")) if last else "-"
        tpm = count(last.limits.get("tpm", last.limits.get("itpm"))) if last else "-"
        mean = len(calls) * 60.0 / max(timeline.total_s, 1.0)
        rows.append([model, count(len(calls)), count(limited), count(mean), rpm, tpm])
    if len(data.runs) > 1:
        section.paragraphs.append(
            f"The job ran {len(data.runs)} times; the time axis joins the runs end to end "
            f"({duration(timeline.total_s)} of running time)."
        )
    section.tables.append(
        Table(
            ["model", "requests", "429s", "mean requests/min", "RPM limit (last)", "TPM limit (last)"],
            rows,
            numeric=frozenset({1, 2, 3, 4, 5}),
        )
    )
    return section
