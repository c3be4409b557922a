"""The report as plain records: sections of paragraphs, charts and tables, rendered to HTML and
Markdown alike."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Chart", "Section", "Table"]


@dataclass(frozen=True, slots=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: frozenset[int] = frozenset()  # indexes of right-aligned columns
    note: str = ""  # e.g. "first 500 of 1,234 shown"


@dataclass(frozen=True, slots=True)
class Chart:
    name: str  # file stem for the Markdown version: report-plots/<name>.svg
    title: str
    svg: str


@dataclass(slots=True)
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
