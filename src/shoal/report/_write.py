"""`write_report`: report.html (plots inline) and report.md (plots in report-plots/) for one job."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..view import Redactor
from ._data import ReportData, load_report_data
from ._model import Section
from ._render import PLOTS_DIR, to_html, to_markdown
from ._sections import (
    cost_section,
    outcomes_section,
    overview_section,
    review_section,
    time_section,
    tokens_section,
)
from ._throughput import throughput_section
from ._workers import workers_section

__all__ = ["ReportFiles", "build_sections", "write_report"]


@dataclass(frozen=True, slots=True)
class ReportFiles:
    job: str
    html: Path
    markdown: Path
    plots: list[Path]


def build_sections(data: ReportData) -> list[Section]:
    workers = workers_section(data)  # Ray runs only
    return [
        overview_section(data),
        throughput_section(data),
        time_section(data),
        *([workers] if workers is not None else []),
        tokens_section(data),
        cost_section(data),
        outcomes_section(data),
        review_section(data),
    ]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(
    journal: Path,
    out_dir: Path,
    *,
    job: str | None = None,
    redactor: Redactor | None = None,
    now: float | None = None,
) -> ReportFiles | None:
    """None when the journal holds no run (of `job`)."""
    data = load_report_data(journal, job=job, now=now)
    if data is None:
        return None
    redact = (redactor or Redactor()).text
    sections = build_sections(data)
    title = f"shoal report: {data.job}"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data.generated_at))
    run = data.status["run"]
    meta = f"Generated {stamp} from `{data.journal}`; run {run['id']}, {run['state']}."
    out_dir.mkdir(parents=True, exist_ok=True)
    plots_dir = out_dir / PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    plots = []
    for section in sections:
        for chart in section.charts:
            path = plots_dir / f"{chart.name}.svg"
            _write(path, redact(chart.svg))
            plots.append(path)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    _write(html_path, redact(to_html(title, meta, sections)))
    _write(md_path, redact(to_markdown(title, meta, sections)))
    return ReportFiles(data.job, html_path, md_path, plots)
