"""Datasets to map: JSONL or CSV records, each with an id."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["Record", "read_records"]


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    line: int  # where it was read, for messages a person can act on
    fields: dict[str, Any]


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: input file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise InputError(f"{path}: CSV has no header row")
        return [(index + 2, dict(row)) for index, row in enumerate(reader)]
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise InputError(f"{path}:{number}: not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise InputError(f"{path}:{number}: each line must be a JSON object")
        rows.append((number, value))
    return rows


def read_records(path: Path, *, id_field: str = "id", id_required: bool = False) -> list[Record]:
    """Every record of the file. Without its id field a record is identified by its line number."""
    records: list[Record] = []
    seen: dict[str, int] = {}
    for line, fields in _rows(path):
        value = fields.get(id_field)
        if value is None or value == "":
            if id_required:
                raise InputError(f"{path}:{line}: record has no '{id_field}' field")
            record_id = str(line)
        else:
            record_id = str(value)
        if record_id in seen:
            raise InputError(f"{path}:{line}: duplicate id '{record_id}' (first on line {seen[record_id]})")
        seen[record_id] = line
        records.append(Record(record_id, line, fields))
    if not records:
        raise InputError(f"{path}: no records")
    return records
