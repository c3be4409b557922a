"""Datasets to map: JSONL or CSV records, each with an id."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["Record", "iter_records", "read_records"]


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    line: int  # where it was read, for messages a person can act on
    fields: dict[str, Any]


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file's rows one at a time, so that a dataset of any size costs no memory to scan."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(handle)
                if not reader.fieldnames:
                    raise InputError(f"{path}: CSV has no header row")
                for index, row in enumerate(reader):
                    yield index + 2, dict(row)
                return
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    value = json.loads(raw)
                except ValueError as exc:
                    raise InputError(f"{path}:{number}: not valid JSON: {exc}") from None
                if not isinstance(value, dict):
                    raise InputError(f"{path}:{number}: each line must be a JSON object")
                yield number, value
    except FileNotFoundError:
        raise InputError(f"{path}: input file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None


def iter_records(path: Path, *, id_field: str = "id", id_required: bool = False) -> Iterator[Record]:
    """The file's records one at a time, without the duplicate check (`read_records` has it)."""
    for line, fields in _rows(path):
        value = fields.get(id_field)
        if value is None or value == "":
            if id_required:
                raise InputError(f"{path}:{line}: record has no '{id_field}' field")
            record_id = str(line)
        else:
            record_id = str(value)
        yield Record(record_id, line, fields)


def read_records(path: Path, *, id_field: str = "id", id_required: bool = False) -> list[Record]:
    """Every record of the file. Without its id field a record is identified by its line number."""
    records: list[Record] = []
    seen: dict[str, int] = {}
    for record in iter_records(path, id_field=id_field, id_required=id_required):
        if record.id in seen:
            raise InputError(
                f"{path}:{record.line}: duplicate id '{record.id}' (first on line {seen[record.id]})"
            )
        seen[record.id] = record.line
        records.append(record)
    if not records:
        raise InputError(f"{path}: no records")
    return records
