"""A table of figures per model that keeps each model's whole name at any width.

Model names are long ("anthropic:claude-3-5-haiku-20241022"); at 80 columns a model column
beside six figures would cut them. When the one-line layout does not fit, each model's name
gets a line of its own above its figures, which keep their columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["ModelRows"]

_UNBOUNDED = 10_000  # columns: to measure what the one-line layout would need


@dataclass(frozen=True, slots=True)
class ModelRows:
    headers: Sequence[str]  # of the figures, right-aligned
    rows: Sequence[tuple[str, Sequence[str]]]  # (model, figures)
    caption: str | None = None

    def _wide(self) -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold", caption_justify="left")
        table.add_column("model", no_wrap=True)
        for header in self.headers:
            table.add_column(header, justify="right", no_wrap=True)
        for name, cells in self.rows:
            table.add_row(name, *cells)
        table.caption = self.caption
        return table

    def _figures(self, show_header: bool, cells: Sequence[str] | None, widths: list[int]) -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold", show_header=show_header)
        table.add_column("", width=2)  # indents the figures under their model's name
        for header, width in zip(self.headers, widths, strict=True):
            table.add_column(header, justify="right", no_wrap=True, width=width)
        if cells is not None:
            table.add_row("", *cells)
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = self._wide()
        unbounded = options.update(max_width=_UNBOUNDED)
        if Measurement.get(console, unbounded, wide).maximum <= options.max_width:
            yield wide
            return
        widths = [
            max([len(header), *(len(cells[i]) for _, cells in self.rows)])
            for i, header in enumerate(self.headers)
        ]
        yield self._figures(True, None, widths)
        for name, cells in self.rows:
            yield Text(name, style="bold", overflow="fold")
            yield self._figures(False, cells, widths)
        if self.caption:
            yield Text(self.caption, style="dim")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self._wide()).clamp(max_width=options.max_width)
