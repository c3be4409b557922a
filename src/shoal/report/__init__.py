"""`shoal report`: report.html and report.md for a finished or stopped job, with SVG plots."""

from ._data import ReportData, load_report_data
from ._write import ReportFiles, build_sections, write_report

__all__ = ["ReportData", "ReportFiles", "build_sections", "load_report_data", "write_report"]
